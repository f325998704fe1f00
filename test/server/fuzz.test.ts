// Random request bodies (fast-check), three ways: a valid body with one field replaced by any
// JSON value (the answer is 200, or a 4xx naming that field); every field random (mostly 4xx);
// any JSON or text at all (400). Always 200 or 4xx in OpenAI's error shape, never a 5xx, never a
// hang; and afterwards the server serves normally with no KV block held.

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL, type Running, start } from './helpers.ts';

let s: Running;
beforeAll(async () => {
  s = await start();
});
afterAll(() => s?.close());

const anything = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant(null), fc.string({ maxLength: 8 }), fc.double(), fc.integer(), fc.integer({ min: -2, max: 6 }), fc.boolean());
/** A field's arbitrary in "every field random" mode: its own kind of value, or anything one time in four. */
const field = <T>(good: fc.Arbitrary<T>) => fc.oneof({ weight: 3, arbitrary: good }, { weight: 1, arbitrary: anything });
const num = (min: number, max: number) => fc.double({ min, max, noNaN: true });
const int = (min: number, max: number) => fc.integer({ min, max });

// valid values for every field (with min_tokens <= max_tokens, so that each field alone decides)
const validSampling = {
  model: fc.constant(MODEL),
  max_tokens: int(1, 4),
  temperature: num(0, 2),
  top_p: num(0.05, 1),
  top_k: int(-1, 40),
  min_p: num(0, 1),
  presence_penalty: num(-2, 2),
  frequency_penalty: num(-2, 2),
  repetition_penalty: num(0.5, 2),
  n: int(1, 3),
  stop: fc.oneof(fc.string({ minLength: 1, maxLength: 3 }), fc.array(fc.string({ minLength: 1, maxLength: 3 }), { maxLength: 3 })),
  seed: int(0, 2 ** 31),
  stream: fc.boolean(),
  ignore_eos: fc.boolean(),
  min_tokens: int(0, 1),
  stop_token_ids: fc.array(int(0, 383), { maxLength: 3 }),
  skip_special_tokens: fc.boolean(),
  echo: fc.constant(false),
};
const validPrompt = fc.oneof(fc.string({ maxLength: 40 }), fc.array(fc.string({ maxLength: 10 }), { minLength: 1, maxLength: 3 }), fc.array(int(0, 383), { minLength: 1, maxLength: 20 }));
const validCompletion = { ...validSampling, prompt: validPrompt, logprobs: int(0, 5) };
const validMessage = fc.record({ role: fc.constantFrom('system', 'user', 'assistant'), content: fc.string({ maxLength: 30 }) });
const validChat = { ...validSampling, messages: fc.array(validMessage, { minLength: 1, maxLength: 3 }), logprobs: fc.boolean(), top_logprobs: int(0, 5) };

/** Fields whose bad value may be reported under a related field's name. */
const RELATED: Record<string, string[]> = {
  max_tokens: ['min_tokens'],
  stream: ['stream_options'],
  stream_options: ['include_usage'],
  logprobs: ['top_logprobs'],
};

/** A valid body with one field (or a field not in the API at all) set to any JSON value. */
function oneBadField(valid: Record<string, fc.Arbitrary<unknown>>) {
  const names = [...Object.keys(valid), 'stream_options', 'unknown_field'];
  return fc.record(valid).chain((body) =>
    fc.tuple(fc.constantFrom(...names), anything).map(([k, v]) => {
      const b: Record<string, unknown> = { ...body, [k]: v };
      if (b.logprobs !== true && 'top_logprobs' in valid) delete b.top_logprobs;
      return { body: b, field: k };
    }),
  );
}

const sampling = Object.fromEntries(Object.entries(validSampling).map(([k, a]) => [k, field(a as fc.Arbitrary<unknown>)]));
const randomCompletion = fc.record({ ...sampling, prompt: field(validPrompt), logprobs: field(int(-1, 22)), stream_options: field(fc.record({ include_usage: field(fc.boolean()) })) }, { requiredKeys: [] });
const randomChat = fc.record(
  {
    ...sampling,
    messages: field(fc.array(field(fc.record({ role: field(fc.constantFrom('system', 'user', 'wizard')), content: field(fc.string({ maxLength: 30 })) }, { requiredKeys: [] })), { maxLength: 4 })),
    logprobs: field(fc.boolean()),
    top_logprobs: field(int(-1, 22)),
  },
  { requiredKeys: [] },
);

/** One request with a deadline: hanging fails the property. */
async function send(path: string, body: string): Promise<{ status: number; text: string }> {
  const r = await fetch(`${s.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(20_000) });
  return { status: r.status, text: await r.text() };
}

const seen = { ok: 0, all: 0 };

/** 200 with a well-formed body, or a 4xx in OpenAI's error shape naming one of `params` (when given). */
function check(r: { status: number; text: string }, streamed: boolean, params?: string[]): void {
  seen.all++;
  if (r.status === 200) {
    seen.ok++;
    if (streamed) expect(r.text.endsWith('data: [DONE]\n\n')).toBe(true);
    else expect(Array.isArray(JSON.parse(r.text).choices)).toBe(true);
    return;
  }
  expect([400, 404]).toContain(r.status);
  const e = JSON.parse(r.text).error;
  expect(typeof e.message).toBe('string');
  expect(e.type).toBe('invalid_request_error');
  if (params) expect(params).toContain(e.param);
}

describe('fuzzed request bodies', () => {
  it.each([
    ['/v1/completions', validCompletion],
    ['/v1/chat/completions', validChat],
  ])('%s, one field bad: 200, or a 4xx naming that field', async (path, valid) => {
    seen.ok = seen.all = 0;
    await fc.assert(
      fc.asyncProperty(oneBadField(valid), async ({ body, field }) => {
        check(await send(path, JSON.stringify(body)), body.stream === true, [field, ...(RELATED[field] ?? [])]);
      }),
      { numRuns: 200 },
    );
    // most bodies are valid but for the one field, and many of those values are accepted
    expect(seen.ok / seen.all).toBeGreaterThan(0.15);
  });

  it.each([
    ['/v1/completions', randomCompletion],
    ['/v1/chat/completions', randomChat],
  ])('%s, every field random: 200 or 4xx, never 5xx', async (path, arb) => {
    await fc.assert(
      fc.asyncProperty(arb, async (b) => {
        check(await send(path, JSON.stringify(b)), (b as { stream?: unknown }).stream === true);
      }),
      { numRuns: 150 },
    );
  });

  it('any JSON, and any text, as the body: 400', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.jsonValue().map((v) => JSON.stringify(v)), fc.string()), fc.constantFrom('/v1/completions', '/v1/chat/completions'), async (body, path) => {
        const r = await send(path, body);
        expect(r.status).toBe(400);
        expect(JSON.parse(r.text).error.type).toBe('invalid_request_error');
      }),
      { numRuns: 200 },
    );
  });

  it('serves normally afterwards, with no KV block held', async () => {
    const r = await send('/v1/completions', JSON.stringify({ model: MODEL, prompt: 'after the storm', max_tokens: 4, ignore_eos: true }));
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).usage.completion_tokens).toBe(4);
    expect(s.llm.engine.blocks.usage().usedBlocks).toBe(0);
    expect(s.llm.engine.hasUnfinished()).toBe(false);
    expect(s.errors).toEqual([]);
  });
});

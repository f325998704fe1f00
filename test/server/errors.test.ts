// Bad requests over raw HTTP: each malformed or out-of-range body is a 400 in OpenAI's error shape
// naming the field in OpenAI's spelling; a prompt too long for the model is a 400 at once;
// unknown models and routes are 404; a missing or wrong key is 401; a full queue is 429.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL, type Running, post, start, until } from './helpers.ts';

function expectError(r: { status: number; json: any }, status: number, param: string | null) {
  expect(r.status).toBe(status);
  expect(Object.keys(r.json).sort()).toEqual(['error']);
  expect(Object.keys(r.json.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof r.json.error.message).toBe('string');
  expect(r.json.error.message.length).toBeGreaterThan(5);
  if (status === 400 || status === 401 || status === 404) expect(r.json.error.type).toBe('invalid_request_error');
  expect(r.json.error.param).toBe(param);
}

describe('malformed requests', () => {
  let s: Running;
  beforeAll(async () => {
    s = await start();
  });
  afterAll(() => s?.close());
  const cmpl = (body: unknown) => post(`${s.url}/v1/completions`, body);
  const chat = (body: unknown) => post(`${s.url}/v1/chat/completions`, body);

  it.each([
    ['{bad json', null],
    ['[1, 2]', null],
    ['"a string"', null],
    ['null', null],
    ['', null],
  ])('a body that is not a JSON object: %j', async (body, param) => {
    expectError(await cmpl(body), 400, param);
  });

  it('a "__proto__" or "constructor" key is dropped, and the field it was in named', async () => {
    const body = `{"model": {"__proto__": null}, "prompt": "x", "max_tokens": 1}`;
    expectError(await cmpl(body), 400, 'model');
    const ok = await cmpl(`{"model": "${MODEL}", "prompt": "x", "max_tokens": 1, "constructor": {"prototype": {"polluted": 1}}}`);
    expect(ok.status).toBe(200);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('a JSON body sent without a JSON content type is still parsed', async () => {
    const r = await post(`${s.url}/v1/completions`, JSON.stringify({ prompt: 'x', max_tokens: 1 }), { 'content-type': 'application/x-www-form-urlencoded' });
    expect(r.status).toBe(200);
  });

  const base = { model: MODEL, prompt: 'hi', max_tokens: 2 };
  it.each([
    [{ model: MODEL }, 'prompt'],
    [{ ...base, prompt: 5 }, 'prompt'],
    [{ ...base, prompt: {} }, 'prompt'],
    [{ ...base, prompt: [] }, 'prompt'],
    [{ ...base, prompt: [1, 'a'] }, 'prompt'],
    [{ ...base, prompt: [[1, 99999]] }, 'prompt'],
    [{ ...base, prompt: [1.5] }, 'prompt'],
    [{ ...base, model: 5 }, 'model'],
    [{ ...base, max_tokens: '5' }, 'max_tokens'],
    [{ ...base, max_tokens: 0 }, 'max_tokens'],
    [{ ...base, max_tokens: -1 }, 'max_tokens'],
    [{ ...base, max_tokens: 1.5 }, 'max_tokens'],
    [{ ...base, temperature: -0.1 }, 'temperature'],
    [{ ...base, temperature: 'hot' }, 'temperature'],
    [{ ...base, top_p: 0 }, 'top_p'],
    [{ ...base, top_p: 1.5 }, 'top_p'],
    [{ ...base, top_k: -2 }, 'top_k'],
    [{ ...base, top_k: 2.5 }, 'top_k'],
    [{ ...base, min_p: 2 }, 'min_p'],
    [{ ...base, n: 0 }, 'n'],
    [{ ...base, n: 129 }, 'n'],
    [{ ...base, presence_penalty: 3 }, 'presence_penalty'],
    [{ ...base, frequency_penalty: -2.5 }, 'frequency_penalty'],
    [{ ...base, repetition_penalty: 0 }, 'repetition_penalty'],
    [{ ...base, seed: -1 }, 'seed'],
    [{ ...base, seed: 'x' }, 'seed'],
    [{ ...base, stop: 5 }, 'stop'],
    [{ ...base, stop: [''] }, 'stop'],
    [{ ...base, stop: [1] }, 'stop'],
    [{ ...base, stop_token_ids: 'x' }, 'stop_token_ids'],
    [{ ...base, stop_token_ids: [-1] }, 'stop_token_ids'],
    [{ ...base, logprobs: 21 }, 'logprobs'],
    [{ ...base, logprobs: -1 }, 'logprobs'],
    [{ ...base, min_tokens: 100 }, 'min_tokens'],
    [{ ...base, ignore_eos: 'yes' }, 'ignore_eos'],
    [{ ...base, skip_special_tokens: 1 }, 'skip_special_tokens'],
    [{ ...base, stream: 'true' }, 'stream'],
    [{ ...base, stream_options: { include_usage: true } }, 'stream_options'],
    [{ ...base, stream: true, stream_options: 'yes' }, 'stream_options'],
    [{ ...base, stream: true, stream_options: { include_usage: 'yes' } }, 'include_usage'],
    [{ ...base, echo: true }, 'echo'],
    [{ ...base, suffix: 'x' }, 'suffix'],
    [{ ...base, best_of: 3 }, 'best_of'],
    [{ ...base, logit_bias: { '1': 5 } }, 'logit_bias'],
    [{ ...base, prompt_logprobs: 1 }, 'prompt_logprobs'],
  ])('completions %j: 400 naming %s', async (body, param) => {
    expectError(await cmpl(body), 400, param);
  });

  const msgs = [{ role: 'user', content: 'hi' }];
  const cbase = { model: MODEL, messages: msgs, max_tokens: 2 };
  it.each([
    [{ model: MODEL }, 'messages'],
    [{ model: MODEL, messages: [] }, 'messages'],
    [{ model: MODEL, messages: 'hi' }, 'messages'],
    [{ model: MODEL, messages: [{}] }, 'messages'],
    [{ model: MODEL, messages: ['hi'] }, 'messages'],
    [{ model: MODEL, messages: [{ role: 'wizard', content: 'x' }] }, 'messages'],
    [{ model: MODEL, messages: [{ role: 'user', content: 5 }] }, 'messages'],
    [{ model: MODEL, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 'messages'],
    [{ model: MODEL, messages: [{ role: 'user', content: [{ type: 'text' }] }] }, 'messages'],
    [{ ...cbase, logprobs: 'yes' }, 'logprobs'],
    [{ ...cbase, top_logprobs: 2 }, 'top_logprobs'],
    [{ ...cbase, logprobs: true, top_logprobs: 21 }, 'top_logprobs'],
    [{ ...cbase, max_completion_tokens: 0 }, 'max_completion_tokens'],
    [{ ...cbase, max_tokens: 0 }, 'max_tokens'],
    [{ ...cbase, top_p: -1 }, 'top_p'],
    [{ ...cbase, tools: [{ type: 'function', function: { name: 'f' } }] }, 'tools'],
    [{ ...cbase, response_format: { type: 'json_object' } }, 'response_format'],
    [{ ...cbase, chat_template_kwargs: 5 }, 'chat_template_kwargs'],
    [{ ...cbase, add_generation_prompt: 'no' }, 'add_generation_prompt'],
  ])('chat %j: 400 naming %s', async (body, param) => {
    expectError(await chat(body), 400, param);
  });

  it('an unknown model is 404 naming model', async () => {
    const r = await cmpl({ ...base, model: 'gpt-4' });
    expectError(r, 404, 'model');
    expect(r.json.error.code).toBe('model_not_found');
    expectError(await chat({ ...cbase, model: 'nope' }), 404, 'model');
  });

  it('an unknown route is 404', async () => {
    expectError(await post(`${s.url}/v1/engines`, {}), 404, null);
    expect((await fetch(`${s.url}/v1/completions`)).status).toBe(404);
  });

  it('a prompt longer than the model allows is a 400 at once, not a hang', async () => {
    const t0 = performance.now();
    const long = 'word '.repeat(600);
    const r1 = await cmpl({ model: MODEL, prompt: long, max_tokens: 1 });
    expectError(r1, 400, 'prompt');
    expect(r1.json.error.code).toBe('context_length_exceeded');
    expect(r1.json.error.message).toMatch(/maximum context length is 512 tokens/);
    expectError(await cmpl({ model: MODEL, prompt: Array(513).fill(5) }), 400, 'prompt');
    expectError(await chat({ model: MODEL, messages: [{ role: 'user', content: long }] }), 400, 'messages');
    expectError(await cmpl({ model: MODEL, prompt: long, stream: true }), 400, 'prompt');
    // the prompt fits, the prompt plus max_tokens does not
    expectError(await cmpl({ model: MODEL, prompt: 'hi', max_tokens: 511 }), 400, 'max_tokens');
    expectError(await chat({ ...cbase, max_completion_tokens: 600 }), 400, 'max_completion_tokens');
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(s.llm.engine.hasUnfinished()).toBe(false);
  });

  it('more choices than the batch can ever hold is a 400 naming n', async () => {
    const small = await start({}, { maxNumSeqs: 4 });
    try {
      expectError(await post(`${small.url}/v1/completions`, { prompt: 'hi', max_tokens: 2, n: 5 }), 400, 'n');
      expect((await post(`${small.url}/v1/completions`, { prompt: 'hi', max_tokens: 2, n: 4 })).status).toBe(200);
    } finally {
      await small.close();
    }
  });

  it('a request the KV cache can never hold is a 400 before any token is streamed', async () => {
    const small = await start({}, { numGpuBlocks: 8 });
    try {
      const r = await post(`${small.url}/v1/completions`, { model: MODEL, prompt: 'hi', max_tokens: 100, stream: true });
      expectError(r, 400, 'max_tokens');
      expect((await post(`${small.url}/v1/completions`, { model: MODEL, prompt: 'hi', max_tokens: 8 })).status).toBe(200);
    } finally {
      await small.close();
    }
  });

  it('keeps serving after all of that, with no KV block held', async () => {
    const r = await cmpl({ model: MODEL, prompt: 'still here', max_tokens: 3 });
    expect(r.status).toBe(200);
    expect(r.json.choices[0].text).toBeTypeOf('string');
    expect(s.llm.engine.blocks.usage().usedBlocks).toBe(0);
    expect(s.errors).toEqual([]);
  });
});

describe('API key', () => {
  let s: Running;
  beforeAll(async () => {
    s = await start({ apiKey: 'sk-test' });
  });
  afterAll(() => s?.close());

  it('a missing or wrong key is 401 on /v1; the right key passes', async () => {
    const body = { model: MODEL, prompt: 'x', max_tokens: 1 };
    const missing = await post(`${s.url}/v1/completions`, body);
    expectError(missing, 401, null);
    expect(missing.json.error.code).toBe('invalid_api_key');
    expectError(await post(`${s.url}/v1/completions`, body, { authorization: 'Bearer sk-wrong' }), 401, null);
    expectError(await post(`${s.url}/v1/completions`, body, { authorization: 'sk-test' }), 401, null);
    expect((await fetch(`${s.url}/v1/models`)).status).toBe(401);
    // the same route spelled otherwise is still the route
    expect((await fetch(`${s.url}/%761/models`)).status).toBe(401);
    expect((await fetch(`${s.url}/v1/./models`)).status).toBe(401);
    expect((await post(`${s.url}/v1/completions`, body, { authorization: 'Bearer sk-test' })).status).toBe(200);
    expect((await fetch(`${s.url}/v1/models`, { headers: { authorization: 'Bearer sk-test' } })).status).toBe(200);
  });

  it('/health and /metrics need no key', async () => {
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
    expect((await fetch(`${s.url}/metrics`)).status).toBe(200);
  });
});

describe('bounded queue', () => {
  let s: Running;
  beforeAll(async () => {
    s = await start({ maxQueue: 1 }, { maxNumSeqs: 1 });
  });
  afterAll(() => s?.close());

  it('beyond --max-queue waiting requests, 429; served again once the queue drains', async () => {
    const sched = s.llm.engine.scheduler;
    // A runs (the batch holds one sequence) ...
    const ac = new AbortController();
    const a = await fetch(`${s.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'A', max_tokens: 400, ignore_eos: true, stream: true }), signal: ac.signal });
    expect(a.status).toBe(200);
    const reader = a.body!.getReader();
    await reader.read();
    // ... B waits behind it ...
    const b = post(`${s.url}/v1/completions`, { prompt: 'B', max_tokens: 2 });
    expect(await until(() => sched.waiting.length === 1)).toBe(true);
    // ... and C finds the queue full
    const c = await post(`${s.url}/v1/completions`, { prompt: 'C', max_tokens: 2 });
    expectError(c, 429, null);
    expect(c.json.error.code).toBe('rate_limit_exceeded');
    ac.abort();
    await reader.cancel().catch(() => {});
    expect((await b).status).toBe(200);
    expect((await post(`${s.url}/v1/completions`, { prompt: 'D', max_tokens: 2 })).status).toBe(200);
    expect(s.llm.engine.blocks.usage().usedBlocks).toBe(0);
  });

  it('the 429 carries Retry-After', async () => {
    const ac = new AbortController();
    const a = await fetch(`${s.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'A', max_tokens: 400, ignore_eos: true, stream: true }), signal: ac.signal });
    const reader = a.body!.getReader();
    await reader.read();
    const b = post(`${s.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'B' }], max_tokens: 2 });
    await until(() => s.llm.engine.scheduler.waiting.length === 1);
    const r = await fetch(`${s.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ messages: [{ role: 'user', content: 'C' }], stream: true }) });
    expect(r.status).toBe(429);
    expect(r.headers.get('retry-after')).toBe('1');
    ac.abort();
    await reader.cancel().catch(() => {});
    expect((await b).status).toBe(200);
  });
});

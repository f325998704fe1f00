// The official `openai` client against the server over loopback: completions and chat, whole
// and streamed. Greedy outputs must equal what the engine gives for the same token ids, so the
// prompt, template and text plumbing are checked, not only the shapes.

import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL, type Running, start } from './helpers.ts';

let s: Running;
let client: OpenAI;
// vLLM's extra sampling fields pass through the client's body untouched
const extra = (o: Record<string, unknown>) => o as {};

beforeAll(async () => {
  s = await start();
  client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(() => s?.close());

async function engineGreedy(ids: number[], maxTokens: number): Promise<string> {
  const [out] = await s.llm.generate([ids], { temperature: 0, maxTokens, ignoreEos: true });
  return out.outputs[0].text;
}

describe('completions', () => {
  it('a greedy completion is the engine output, shaped as OpenAI', async () => {
    const prompt = 'The engine keeps';
    const r = await client.completions.create({ model: MODEL, prompt, max_tokens: 6, temperature: 0, ...extra({ ignore_eos: true }) });
    const ids = s.llm.engine.tokenizer!.encode(prompt);
    expect(r.id).toMatch(/^cmpl-[0-9a-f]{32}$/);
    expect(r.object).toBe('text_completion');
    expect(r.model).toBe(MODEL);
    expect(Math.abs(r.created - Date.now() / 1000)).toBeLessThan(60);
    expect(r.choices).toHaveLength(1);
    expect(r.choices[0]).toMatchObject({ index: 0, finish_reason: 'length', logprobs: null });
    expect(r.choices[0].text).toBe(await engineGreedy(ids, 6));
    expect(r.usage).toEqual({ prompt_tokens: ids.length, completion_tokens: 6, total_tokens: ids.length + 6 });
  });

  it('streams the same text in chunks, then the usage, then [DONE]', async () => {
    const body = { model: MODEL, prompt: 'Once upon', max_tokens: 8, temperature: 0, ...extra({ ignore_eos: true }) };
    const whole = await client.completions.create(body);
    const stream = await client.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
    let text = '';
    const finish: (string | null)[] = [];
    let usage;
    for await (const c of stream) {
      expect(c.id).toMatch(/^cmpl-/);
      expect(c.object).toBe('text_completion');
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        text += ch.text;
        finish.push(ch.finish_reason);
      }
    }
    expect(text).toBe(whole.choices[0].text);
    expect(finish.at(-1)).toBe('length');
    expect(finish.slice(0, -1).every((f) => f === null)).toBe(true);
    expect(usage).toEqual(whole.usage);
  });

  it('a batch of prompts gives one choice per prompt and sample, indexed prompt * n + i', async () => {
    const prompts = ['alpha', 'beta gamma'];
    const r = await client.completions.create({ model: MODEL, prompt: prompts, max_tokens: 4, temperature: 0, n: 2, ...extra({ ignore_eos: true }) });
    expect(r.choices.map((c) => c.index).sort()).toEqual([0, 1, 2, 3]);
    const tok = s.llm.engine.tokenizer!;
    for (const c of r.choices) expect(c.text).toBe(await engineGreedy(tok.encode(prompts[Math.floor(c.index / 2)]), 4));
    expect(r.usage!.completion_tokens).toBe(16);
    expect(r.usage!.prompt_tokens).toBe(tok.encode(prompts[0]).length + tok.encode(prompts[1]).length);
  });

  it('takes token ids as the prompt', async () => {
    const ids = [1, 45, 74, 81, 289];
    const r = await client.completions.create({ model: MODEL, prompt: ids, max_tokens: 5, temperature: 0, ...extra({ ignore_eos: true }) });
    expect(r.choices[0].text).toBe(await engineGreedy(ids, 5));
    expect(r.usage!.prompt_tokens).toBe(5);
  });

  it('a seed reproduces a sampled completion', async () => {
    const body = { model: MODEL, prompt: 'seeded', max_tokens: 10, temperature: 1, top_p: 0.95, seed: 42, n: 2, ...extra({ ignore_eos: true, top_k: 50 }) };
    const [a, b] = await Promise.all([client.completions.create(body), client.completions.create(body)]);
    expect(a.choices.map((c) => c.text)).toEqual(b.choices.map((c) => c.text));
  });

  it('stops at a stop string, which is left out', async () => {
    const full = (await client.completions.create({ model: MODEL, prompt: 'stop here', max_tokens: 24, temperature: 0, ...extra({ ignore_eos: true }) })).choices[0].text;
    // a two-character stop string from the middle of the greedy text, its first occurrence
    const k = [...Array(full.length - 4).keys()].map((i) => i + 2).find((i) => !full.slice(i, i + 2).includes('\uFFFD'))!;
    const stop = full.slice(k, k + 2);
    const r = await client.completions.create({ model: MODEL, prompt: 'stop here', max_tokens: 24, temperature: 0, stop: [stop], ...extra({ ignore_eos: true }) });
    expect(r.choices[0].text).toBe(full.slice(0, full.indexOf(stop)));
    expect(r.choices[0].finish_reason).toBe('stop');
  });

  it('log-probs in the legacy shape, streamed and not', async () => {
    const body = { model: MODEL, prompt: 'log', max_tokens: 5, temperature: 0, logprobs: 2, ...extra({ ignore_eos: true }) };
    const r = await client.completions.create(body);
    const lp = r.choices[0].logprobs!;
    expect(lp.tokens).toHaveLength(5);
    expect(lp.token_logprobs!.every((x) => x <= 0)).toBe(true);
    expect(lp.top_logprobs!.every((t) => Object.keys(t).length >= 1 && Object.keys(t).length <= 3)).toBe(true);
    expect(lp.text_offset![0]).toBe(0);
    let tokens: string[] = [];
    for await (const c of await client.completions.create({ ...body, stream: true })) tokens = tokens.concat(c.choices[0]?.logprobs?.tokens ?? []);
    expect(tokens).toEqual(lp.tokens);
  });
});

describe('chat completions', () => {
  const messages = [
    { role: 'system' as const, content: 'You are terse.' },
    { role: 'user' as const, content: 'Say something.' },
  ];

  it("renders the model's chat template: the reply is the engine's greedy continuation", async () => {
    const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 6, temperature: 0, ...extra({ ignore_eos: true }) });
    const ids = s.llm.engine.tokenizer!.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true });
    expect(r.id).toMatch(/^chatcmpl-[0-9a-f]{32}$/);
    expect(r.object).toBe('chat.completion');
    expect(r.choices[0].message.role).toBe('assistant');
    expect(r.choices[0].message.content).toBe(await engineGreedy(ids, 6));
    expect(r.choices[0].finish_reason).toBe('length');
    expect(r.usage).toEqual({ prompt_tokens: ids.length, completion_tokens: 6, total_tokens: ids.length + 6 });
  });

  it('streams deltas: the role first, the same content, a finish reason, usage', async () => {
    const body = { model: MODEL, messages, max_tokens: 7, temperature: 0, ...extra({ ignore_eos: true }) };
    const whole = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id)).toBe(true);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const content = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? '')).join('');
    expect(content).toBe(whole.choices[0].message.content);
    expect(chunks.at(-2)!.choices[0].finish_reason).toBe('length');
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage).toEqual(whole.usage);
  });

  it('n choices, and log-probs with top_logprobs alternatives', async () => {
    const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 4, temperature: 0.8, seed: 3, n: 3, logprobs: true, top_logprobs: 2, ...extra({ ignore_eos: true }) });
    expect(r.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    for (const c of r.choices) {
      const content = c.logprobs!.content!;
      expect(content).toHaveLength(4);
      for (const t of content) {
        expect(t.logprob).toBeLessThanOrEqual(0);
        expect(t.bytes).toEqual([...Buffer.from(t.token, 'utf8')]);
        expect(t.top_logprobs).toHaveLength(2);
        expect(t.top_logprobs[0].logprob).toBeGreaterThanOrEqual(t.top_logprobs[1].logprob);
      }
    }
  });

  it('text content parts are joined', async () => {
    const parts = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }], max_tokens: 3, temperature: 0, ...extra({ ignore_eos: true }) });
    const joined = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'a\nb' }], max_tokens: 3, temperature: 0, ...extra({ ignore_eos: true }) });
    expect(parts.choices[0].message.content).toBe(joined.choices[0].message.content);
  });
});

describe('models', () => {
  it('lists the served model', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual([MODEL]);
    expect(list.data[0].object).toBe('model');
    expect((await client.models.retrieve(MODEL)).id).toBe(MODEL);
  });

  it('an unknown model is the client NotFoundError', async () => {
    await expect(client.completions.create({ model: 'gpt-4', prompt: 'x', max_tokens: 1 })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('a bad parameter is the client BadRequestError naming the field', async () => {
    const e = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], temperature: -1 }).catch((x) => x);
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e.status).toBe(400);
    expect(e.param).toBe('temperature');
    expect(e.type).toBe('invalid_request_error');
  });
});

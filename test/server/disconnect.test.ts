// A client that goes away cancels its request: the engine frees its KV blocks at once, long
// before the request would have finished, streamed or not, whatever the number of choices.

import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL, type Running, parseProm, post, start, until, value } from './helpers.ts';

let s: Running;
beforeAll(async () => {
  s = await start();
});
afterAll(() => s?.close());

const used = () => s.llm.engine.blocks.usage().usedBlocks;
const LONG = { model: MODEL, max_tokens: 400, ignore_eos: true };

describe('client disconnects', () => {
  it('mid-stream: the request is cancelled and its blocks freed at once', async () => {
    const gen0 = s.llm.engine.stats.generatedTokens;
    const ac = new AbortController();
    const r = await fetch(`${s.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ ...LONG, prompt: 'a long story', stream: true }), signal: ac.signal });
    const reader = r.body!.getReader();
    await reader.read();
    await reader.read();
    expect(used()).toBeGreaterThan(0);
    ac.abort();
    expect(await until(() => used() === 0, 2000)).toBe(true);
    expect(s.llm.engine.hasUnfinished()).toBe(false);
    expect(s.llm.engine.stats.generatedTokens - gen0).toBeLessThan(300);
  });

  it('while waiting for a whole (non-streamed) response', async () => {
    const gen0 = s.llm.engine.stats.generatedTokens;
    const ac = new AbortController();
    const r = fetch(`${s.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ ...LONG, messages: [{ role: 'user', content: 'hi' }] }), signal: ac.signal });
    expect(await until(() => used() > 0 && s.llm.engine.stats.generatedTokens > gen0 + 5)).toBe(true);
    ac.abort();
    await expect(r).rejects.toThrow();
    expect(await until(() => used() === 0, 2000)).toBe(true);
    expect(s.llm.engine.stats.generatedTokens - gen0).toBeLessThan(300);
  });

  it('a request with n choices and a batch of prompts frees every sequence', async () => {
    const ac = new AbortController();
    const r = await fetch(`${s.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ ...LONG, prompt: ['one', 'two', 'three'], n: 3, temperature: 1, stream: true }), signal: ac.signal });
    const reader = r.body!.getReader();
    await reader.read();
    expect(await until(() => s.llm.engine.scheduler.stats().numRunningSeqs === 9)).toBe(true);
    ac.abort();
    expect(await until(() => used() === 0, 2000)).toBe(true);
    expect(s.llm.engine.hasUnfinished()).toBe(false);
  });

  it('a socket destroyed mid-stream', async () => {
    await new Promise<void>((resolve, reject) => {
      const u = new URL(`${s.url}/v1/completions`);
      const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => {});
      req.once('error', reject);
      req.end(JSON.stringify({ ...LONG, prompt: 'socket', stream: true }));
    });
    expect(await until(() => used() === 0, 2000)).toBe(true);
  });

  it('cancellations are counted as aborted requests, and the server keeps serving', async () => {
    const { samples } = parseProm(await (await fetch(`${s.url}/metrics`)).text());
    expect(value(samples, 'parallm:request_success_total', { finished_reason: 'abort' })).toBe(6);
    const r = await post(`${s.url}/v1/completions`, { model: MODEL, prompt: 'after', max_tokens: 3 });
    expect(r.status).toBe(200);
    expect(used()).toBe(0);
    expect(s.app.metrics.numQueued).toBe(0);
    expect(s.errors).toEqual([]);
  });
});

// GET /metrics: valid Prometheus text, and its numbers agree with what was served: request
// counts by endpoint and status, token counters against the responses' usage, latency
// histograms per engine request, the running gauge and KV usage while a request runs,
// prefix-cache hits and preemptions.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL, type Running, parseProm, post, start, until, value } from './helpers.ts';

async function scrape(s: Running) {
  const r = await fetch(`${s.url}/metrics`);
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseProm(await r.text());
}

describe('/metrics', () => {
  let s: Running;
  beforeAll(async () => {
    s = await start();
  });
  afterAll(() => s?.close());

  it('parses, and every sample belongs to a family with a TYPE', async () => {
    const { samples, types } = await scrape(s);
    expect(samples.length).toBeGreaterThan(50);
    for (const x of samples) {
      const family = x.name.replace(/_(bucket|sum|count)$/, '');
      expect(types.has(x.name) || types.has(family), x.name).toBe(true);
    }
    for (const name of [
      'parallm:time_to_first_token_seconds',
      'parallm:inter_token_latency_seconds',
      'parallm:e2e_request_latency_seconds',
      'parallm:request_queue_time_seconds',
    ]) {
      expect(types.get(name)).toBe('histogram');
    }
    for (const name of ['parallm:num_requests_running', 'parallm:num_requests_waiting', 'parallm:kv_cache_usage_perc', 'parallm:prefix_cache_hit_rate']) expect(types.get(name)).toBe('gauge');
    for (const name of ['parallm:num_preemptions_total', 'parallm:prompt_tokens_total', 'parallm:generation_tokens_total', 'http_requests_total']) expect(types.get(name)).toBe('counter');
  });

  it('counts requests by endpoint and status, and tokens as the responses report them', async () => {
    const before = (await scrape(s)).samples;
    const usages = [];
    for (let i = 0; i < 3; i++) usages.push((await post(`${s.url}/v1/completions`, { model: MODEL, prompt: `count ${i}`, max_tokens: 3 + i, ignore_eos: true })).json.usage);
    usages.push((await post(`${s.url}/v1/chat/completions`, { model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 4, ignore_eos: true })).json.usage);
    const streamed = await post(`${s.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'y' }], max_tokens: 5, ignore_eos: true, stream: true, stream_options: { include_usage: true } });
    usages.push(JSON.parse(streamed.text.split('\n\n').filter((e) => e.startsWith('data: {')).at(-1)!.slice(6)).usage);
    expect((await post(`${s.url}/v1/completions`, { model: MODEL, prompt: 'x', top_p: 7 })).status).toBe(400);
    expect((await post(`${s.url}/v1/completions`, { model: 'other', prompt: 'x' })).status).toBe(404);
    const after = (await scrape(s)).samples;
    const d = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);

    expect(d('http_requests_total', { method: 'POST', endpoint: '/v1/completions', status: '200' })).toBe(3);
    expect(d('http_requests_total', { method: 'POST', endpoint: '/v1/chat/completions', status: '200' })).toBe(2);
    expect(d('http_requests_total', { method: 'POST', endpoint: '/v1/completions', status: '400' })).toBe(1);
    expect(d('http_requests_total', { method: 'POST', endpoint: '/v1/completions', status: '404' })).toBe(1);
    expect(d('http_requests_total', { method: 'GET', endpoint: '/metrics', status: '200' })).toBe(1);
    expect(d('parallm:prompt_tokens_total')).toBe(usages.reduce((n, u) => n + u.prompt_tokens, 0));
    expect(d('parallm:generation_tokens_total')).toBe(usages.reduce((n, u) => n + u.completion_tokens, 0));
    expect(d('parallm:request_success_total', { finished_reason: 'length' })).toBe(5);
    for (const h of ['time_to_first_token_seconds', 'e2e_request_latency_seconds', 'request_queue_time_seconds']) expect(d(`parallm:${h}_count`), h).toBe(5);
    // one interval per token after the first: (3-1) + (4-1) + (5-1) + (4-1) + (5-1)
    expect(d('parallm:inter_token_latency_seconds_count')).toBe(16);
    expect(d('parallm:e2e_request_latency_seconds_sum')).toBeGreaterThan(0);
  });

  it('running requests and KV usage while a request runs, zero after', async () => {
    const ac = new AbortController();
    const r = await fetch(`${s.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'running', max_tokens: 400, ignore_eos: true, stream: true }), signal: ac.signal });
    const reader = r.body!.getReader();
    await reader.read();
    const during = (await scrape(s)).samples;
    expect(value(during, 'parallm:num_requests_running')).toBe(1);
    expect(value(during, 'parallm:kv_cache_usage_perc')).toBeGreaterThan(0);
    ac.abort();
    await until(() => s.llm.engine.blocks.usage().usedBlocks === 0);
    const idle = (await scrape(s)).samples;
    expect(value(idle, 'parallm:num_requests_running')).toBe(0);
    expect(value(idle, 'parallm:num_requests_waiting')).toBe(0);
    expect(value(idle, 'parallm:kv_cache_usage_perc')).toBe(0);
  });

  it('a repeated prompt hits the prefix cache', async () => {
    const before = (await scrape(s)).samples;
    const prompt = 'a prompt long enough to fill several blocks of four tokens each';
    await post(`${s.url}/v1/completions`, { prompt, max_tokens: 1 });
    await post(`${s.url}/v1/completions`, { prompt, max_tokens: 1 });
    const after = (await scrape(s)).samples;
    const hits = value(after, 'parallm:prefix_cache_hits_total') - value(before, 'parallm:prefix_cache_hits_total');
    expect(hits).toBeGreaterThanOrEqual(8);
    const rate = value(after, 'parallm:prefix_cache_hit_rate');
    expect(rate).toBeGreaterThan(0);
    expect(rate).toBeLessThanOrEqual(1);
  });
});

describe('/metrics under KV pressure', () => {
  it('counts preemptions when the KV cache runs out, and every request still completes', async () => {
    const s = await start({}, { numGpuBlocks: 16 });
    try {
      const rs = await Promise.all(Array.from({ length: 4 }, (_, i) => post(`${s.url}/v1/completions`, { prompt: `p${i}`, max_tokens: 40, ignore_eos: true })));
      expect(rs.map((r) => r.status)).toEqual([200, 200, 200, 200]);
      expect(rs.every((r) => r.json.usage.completion_tokens === 40)).toBe(true);
      const { samples } = await scrape(s);
      expect(value(samples, 'parallm:num_preemptions_total')).toBeGreaterThan(0);
      expect(value(samples, 'parallm:num_preemptions_total')).toBe(s.llm.engine.stats.preemptions);
    } finally {
      await s.close();
    }
  });
});

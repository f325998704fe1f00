// The engine end to end on the tiny HF fixtures: greedy outputs equal HF transformers'; 60
// concurrent requests of mixed lengths with sampling, stops, n > 1, aborts and forced
// preemption (a tiny block pool), with each step launched while the one before runs, each give
// exactly what the request gives when run alone with steps one after another; no block leaks; streaming, log-probs and rejections behave.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LLM } from '../../src/engine/llm.ts';
import type { RequestOutput } from '../../src/engine/outputs.ts';
import type { ModelRunner } from '../../src/engine/runner.ts';
import type { SamplingParams } from '../../src/engine/sampling-params.ts';
import { backendsUnderTest, rng } from '../ops/harness.ts';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'hf', 'tiny-llama');
const refs: { ids: number[]; greedy: number[]; last_logits: number[] }[] = JSON.parse(readFileSync(join(DIR, 'ref.json'), 'utf8')).refs;

interface Job {
  prompt: number[];
  params: Partial<SamplingParams>;
  abortAfter?: number; // outputs received before aborting
}

function jobs(seed: number): Job[] {
  const r = rng(seed);
  const out: Job[] = [];
  for (let i = 0; i < 60; i++) {
    const len = 1 + Math.floor(r() * 40);
    const prompt = [1, ...Array.from({ length: len - 1 }, () => 6 + Math.floor(r() * 370))];
    const kind = i % 6;
    const params: Partial<SamplingParams> = { temperature: 0, maxTokens: 4 + Math.floor(r() * 12), ignoreEos: true };
    if (kind === 1) Object.assign(params, { temperature: 0.9, topK: 20, topP: 0.9, seed: 1000 + i });
    if (kind === 2) Object.assign(params, { n: 2 });
    if (kind === 3) Object.assign(params, { stopTokenIds: [prompt[prompt.length - 1], 100, 101, 102, 103, 104, 105] });
    if (kind === 4) Object.assign(params, { temperature: 0.7, minP: 0.05, seed: 7 * i, n: 2, repetitionPenalty: 1.3, presencePenalty: 0.5 });
    out.push({ prompt, params, abortAfter: kind === 5 && i % 12 === 5 ? 2 : undefined });
  }
  return out;
}

const ids = (o: RequestOutput) => o.outputs.map((s) => s.tokenIds);

describe.each(backendsUnderTest())('%s backend: engine', (backend) => {
  let alone: LLM;
  beforeAll(async () => {
    // warmed up as on a GPU (LlamaModel.warmup: garbage K/V in block 0 before any request), so
    // that every test below also checks that the warm-up changes no output
    alone = await LLM.create({ model: DIR, backend, numGpuBlocks: 256, blockSize: 4, warmup: true });
  });
  afterAll(() => alone?.close());

  // only webgpu compiles kernels as they are first used (cpu has none, native's are built ahead)
  it.skipIf(backend !== 'webgpu')('the warm-up built every kernel that a batch of decodes and prompts uses', async () => {
    const builds = (alone.device as unknown as { kernels: { builds: { count: number } } }).kernels.builds;
    const before = builds.count;
    expect(before).toBeGreaterThan(0);
    const long = Array.from({ length: 40 }, (_, i) => (i * 7) % 50);
    await alone.generate([[1, 2, 3, 4, 5], [9, 8, 7], long], { temperature: 0, maxTokens: 10, ignoreEos: true });
    expect(builds.count - before).toBe(0);
  });

  // decodes of 17-64 rows: matmul_gemv_mma's pipelines per 16 rows, on an adapter with subgroup
  // matrices (elsewhere these rows take kernels that do not depend on the row count)
  it.skipIf(backend !== 'webgpu')('the warm-up built every kernel of decode batches of 17 to 64 sequences', async (ctx) => {
    if (!alone.device.info.features.subgroupMatrix) return ctx.skip('no subgroup matrices: no kernel here is built per row count past 16');
    const builds = (alone.device as unknown as { kernels: { builds: { count: number; keys: string[] } } }).kernels.builds;
    const before = builds.count;
    const prompts = Array.from({ length: 40 }, (_, i) => [1 + (i % 7), 2 + (i % 5)]);
    await alone.generate(prompts, { temperature: 0, maxTokens: 3, ignoreEos: true });
    expect(builds.keys.slice(before)).toEqual([]);
  });

  it('greedy continuations of a batch equal HF transformers', async () => {
    const outs = await alone.generate(
      refs.map((r) => r.ids),
      { temperature: 0, maxTokens: refs[0].greedy.length, ignoreEos: true },
    );
    expect(outs.map((o) => o.outputs[0].tokenIds)).toEqual(refs.map((r) => r.greedy));
  });

  it('log-probs of the sampled token and the prompt match the HF logits', async () => {
    const r = refs[1];
    const [out] = await alone.generate([r.ids], { temperature: 0, maxTokens: 1, logprobs: 3, promptLogprobs: 2, ignoreEos: true });
    const mx = Math.max(...r.last_logits);
    const lse = mx + Math.log(r.last_logits.reduce((s, x) => s + Math.exp(x - mx), 0));
    const lp = out.outputs[0].logprobs![0];
    expect(lp.id).toBe(r.greedy[0]);
    expect(lp.logprob).toBeCloseTo(r.last_logits[r.greedy[0]] - lse, 3);
    expect(lp.top[0].id).toBe(r.greedy[0]);
    expect(lp.top).toHaveLength(3);
    expect(out.promptLogprobs).toHaveLength(r.ids.length);
    expect(out.promptLogprobs![0]).toBeNull();
    expect(out.promptLogprobs!.slice(1).every((x) => x && x.logprob <= 0 && x.top.length === 2)).toBe(true);
  });

  it('streams text that ends as the final output, and stop strings cut the text', async () => {
    const parts: string[] = [];
    let last: RequestOutput | undefined;
    for await (const o of alone.stream('The engine keeps', { temperature: 0, maxTokens: 10, ignoreEos: true })) {
      parts.push(o.outputs[0].text);
      last = o;
    }
    expect(last!.finished).toBe(true);
    expect(last!.outputs[0].finishReason).toBe('length');
    expect(parts.every((p, i) => i === 0 || p.startsWith(parts[i - 1]))).toBe(true);
    const text = last!.outputs[0].text;
    if (text.length > 3) {
      const stop = text.slice(1, 3);
      const [cut] = await alone.generate(['The engine keeps'], { temperature: 0, maxTokens: 10, ignoreEos: true, stop: [stop] });
      expect(cut.outputs[0].text).toBe(text.slice(0, text.indexOf(stop)));
      expect(cut.outputs[0].finishReason).toBe('stop');
    }
  });

  it('rejects token ids outside the vocabulary and empty prompts with a typed error', async () => {
    expect(() => alone.stream([1, 5, 384], {})).toThrow(/token id 384 is outside the vocabulary/);
    expect(() => alone.stream([], {})).toThrow(/prompt.*empty/);
  });

  it('rejects a prompt longer than the model allows, and keeps serving', async () => {
    const long = Array.from({ length: 600 }, () => 7);
    await expect(alone.generate([long], { maxTokens: 2 })).rejects.toThrow(/prompt-too-long/);
    const [ok] = await alone.generate([refs[0].ids], { temperature: 0, maxTokens: 2, ignoreEos: true });
    expect(ok.outputs[0].tokenIds).toEqual(refs[0].greedy.slice(0, 2));
  });

  it('60 concurrent requests under preemption give what each gives alone, and no block leaks', async () => {
    const js = jobs(11);
    // alone, one at a time, in a large pool, each step waiting for the one before (no overlap):
    // the batch below overlaps its steps, so this also checks that overlap changes nothing
    const serial = await LLM.create({ model: DIR, backend, numGpuBlocks: 256, blockSize: 4, overlapSteps: false });
    const want: number[][][] = [];
    try {
      for (const j of js) want.push(ids((await serial.generate([j.prompt], j.params))[0]));
      expect(serial.engine.stats.overlappedSteps).toBe(0);
    } finally {
      await serial.close();
    }

    // together, in 48 blocks of 4 tokens (far less than 60 prompts need) with a 64-token budget,
    // each layer's pools split into 3 parts of 16 blocks (256 bytes each in f16) where the backend
    // binds pools in parts (native keeps a pool in one allocation), so that swaps, copy-on-write
    // and attention cross parts
    const probe = alone.cache.keys[0].length; // 1 part: the large pool needs no split
    expect(probe).toBe(1);
    const split = (alone as unknown as { runner: ModelRunner }).runner.device.info.maxPoolParts >= 3;
    const llm = await LLM.create({ model: DIR, backend, numGpuBlocks: 48, blockSize: 4, maxNumSeqs: 16, maxNumBatchedTokens: 64, swapSpaceGiB: 0.001, ...(split ? { maxKvPartBytes: 16 * 256 } : {}) });
    expect(llm.cache.keys[0].length).toBe(split ? 3 : 1);
    // the device blocks that were swapped or copied (block b lies in part floor(b / 16))
    const runner = (llm as unknown as { runner: ModelRunner }).runner;
    const moved = { swapped: new Set<number>(), copies: [] as number[][] };
    const copyBlocks = runner.copyBlocks.bind(runner);
    runner.copyBlocks = (out, into, copies) => {
      out.forEach(([d]) => moved.swapped.add(d));
      into.forEach(([, d]) => moved.swapped.add(d));
      moved.copies.push(...copies);
      return copyBlocks(out, into, copies);
    };
    try {
      const results = await Promise.all(
        js.map(async (j) => {
          const ac = new AbortController();
          let seen = 0;
          let last: RequestOutput | undefined;
          for await (const o of llm.stream(j.prompt, j.params, { signal: ac.signal })) {
            last = o;
            if (j.abortAfter !== undefined && ++seen === j.abortAfter) ac.abort();
          }
          return last!;
        }),
      );
      js.forEach((j, i) => {
        const got = results[i];
        expect(got.finished).toBe(true);
        if (j.abortAfter !== undefined) {
          expect(got.outputs[0].finishReason).toBe('abort');
          // what came out before the abort is a prefix of the alone run
          got.outputs.forEach((s, k) => expect(want[i][k].slice(0, s.tokenIds.length)).toEqual(s.tokenIds));
        } else {
          expect(ids(got), `request ${i} ${JSON.stringify(j.params)}`).toEqual(want[i]);
        }
      });
      expect(llm.engine.stats.preemptions).toBeGreaterThan(0);
      // most steps were launched while the one before was still running
      expect(llm.engine.stats.overlappedSteps).toBeGreaterThan(llm.engine.stats.steps / 2);
      // swaps touched every part, and copy-on-write copied from one part into another
      const part = (b: number) => Math.floor(b / llm.cache.blocksPerPart);
      expect(new Set([...moved.swapped].map(part))).toEqual(new Set(split ? [0, 1, 2] : [0]));
      expect(moved.copies.length).toBeGreaterThan(0);
      if (split) expect(moved.copies.some(([a, b]) => part(a) !== part(b))).toBe(true);
      const u = llm.engine.blocks.usage();
      expect(u.usedBlocks).toBe(0);
      expect(u.usedHostBlocks).toBe(0);
      llm.engine.blocks.check();
    } finally {
      await llm.close();
    }
  });
});

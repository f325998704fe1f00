// The device's idle time between steps: each timed step reports its span on the device's clock
// (Completion.gpuSpanNs), the engine records the gap from one step's end to the next one's start
// and whether the later step was already queued behind the earlier one, and `bench throughput`
// summarises them (gpuGapsMs). The CPU backend's spans are on the host's clock; webgpu's come
// from timestamp queries where the adapter has them (not llvmpipe).
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gapSummary } from '../../bench/throughput.ts';
import { LLM } from '../../src/engine/llm.ts';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'hf', 'tiny-llama');

describe('gaps between steps on the device', () => {
  it('a timed run records one gap per step after the first, none negative, most steps queued behind the one before', async () => {
    const llm = await LLM.create({ model: DIR, backend: 'cpu', numGpuBlocks: 128, blockSize: 4, timing: true });
    try {
      const prompts = [[1, 2, 3, 4, 5], [9, 8, 7], [4, 4, 4, 4, 4, 4, 4, 4, 4]];
      await llm.generate(prompts, { temperature: 0, maxTokens: 8, ignoreEos: true });
      const s = llm.engine.stats;
      expect(s.steps).toBeGreaterThanOrEqual(8);
      expect(s.gpuGaps).toHaveLength(s.steps - 1);
      s.gpuGaps!.forEach((g, i) => {
        expect(g.ms).toBeGreaterThanOrEqual(0);
        expect(g.step).toBe(i + 2); // a gap is recorded from the second step on
        expect(g.tokens).toBeGreaterThan(0);
        expect(g.launchMs).toBeGreaterThanOrEqual(0);
        expect(g.sinceLaunchMs).toBeGreaterThanOrEqual(0);
        // the first step computes the three prompts; every later one a token of each sequence
        expect(g.tokens).toBe(3);
      });
      // the engine launches step N + 1 before it takes step N's tokens
      expect(s.gpuGaps!.filter((g) => g.queued).length).toBeGreaterThan(s.steps / 2);
    } finally {
      await llm.close();
    }
  });

  it('the engine collects garbage at step boundaries on webgpu by default, and not on cpu (src/util/step-gc.ts)', async () => {
    const saved = process.env.PARALLM_STEP_GC_MB;
    delete process.env.PARALLM_STEP_GC_MB;
    const cpu = await LLM.create({ model: DIR, backend: 'cpu', numGpuBlocks: 64, blockSize: 4 });
    const gpu = await LLM.create({ model: DIR, backend: 'webgpu', numGpuBlocks: 64, blockSize: 4 });
    try {
      expect(cpu.engine.stepGc).toBeUndefined();
      expect(gpu.engine.stepGc?.thresholdMb).toBe(16);
      // a run whose heap grows past the threshold between launches collects at least once
      const g = gpu.engine.stepGc!;
      const keep: number[][] = [];
      const prompts = [[1, 2, 3, 4, 5], [9, 8, 7]];
      const out = gpu.engine.addRequest(prompts[0], { temperature: 0, maxTokens: 6, ignoreEos: true });
      gpu.engine.addRequest(prompts[1], { temperature: 0, maxTokens: 6, ignoreEos: true });
      for (let i = 0; i < 3000; i++) keep.push(Array.from({ length: 1000 }, (_, j) => j + i + 0.5));
      for await (const _ of out) void _;
      expect(g.collections).toBeGreaterThanOrEqual(1);
      expect(keep.length).toBe(3000);
    } finally {
      await cpu.close();
      await gpu.close();
      if (saved !== undefined) process.env.PARALLM_STEP_GC_MB = saved;
    }
  });

  it('an untimed run records none', async () => {
    const llm = await LLM.create({ model: DIR, backend: 'cpu', numGpuBlocks: 128, blockSize: 4 });
    try {
      await llm.generate([[1, 2, 3]], { temperature: 0, maxTokens: 4, ignoreEos: true });
      expect(llm.engine.stats.gpuGaps).toBeUndefined();
    } finally {
      await llm.close();
    }
  });

  it('bench throughput sums the gaps, apart for the steps that were queued and those that were not', () => {
    const gaps = [
      { ms: 0.5, queued: true },
      { ms: 4, queued: true },
      { ms: 10, queued: false },
      { ms: -0.25, queued: true },
      { ms: 1, queued: true },
    ];
    const g = gapSummary(gaps);
    expect(g).toMatchObject({ gaps: 5, totalMs: 15.5, queuedMs: 5.5, notQueuedMs: 10, notQueued: 1, max: 10, over2ms: 2, negative: 1 });
    expect(g.p50).toBe(1);
    expect(g.p90).toBe(10);
    expect(g.largest.map((x) => x.ms)).toEqual([10, 4, 1, 0.5, -0.25]);
  });
});

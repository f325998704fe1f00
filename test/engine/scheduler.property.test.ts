// Random request streams through the scheduler and the fake model (fake-engine.ts): random
// prompt lengths over a few shared prefixes and a tiny vocabulary (so prefixes, and outputs,
// repeat), random n, random stops and aborts, and a small KV pool that forces preemptions.
// After every step the block manager's check() must pass, every scheduled sequence must read
// back its own K/V, nothing may stall, and when every request has ended every block is free or
// cached.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BlockManager } from '../../src/engine/block-manager.ts';
import { Scheduler } from '../../src/engine/scheduler.ts';
import { SequenceGroup } from '../../src/engine/sequence.ts';
import { FakeEngine } from './fake-engine.ts';

/** mulberry32: a tiny seeded PRNG, so that a fast-check seed replays a whole run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const config = fc.record({
  blockSize: fc.constantFrom(1, 2, 4, 8),
  /** Token slots in the cache; numBlocks = ceil(slots / blockSize). */
  slots: fc.integer({ min: 8, max: 128 }),
  numHostBlocks: fc.constantFrom(0, 3, 16, 64),
  watermark: fc.constantFrom(0, 0.05, 0.2),
  enablePrefixCaching: fc.constantFrom(true, true, false),
  /** Every content key the same: hits must still be exact. */
  collide: fc.constantFrom(false, false, true),
  maxNumSeqs: fc.integer({ min: 1, max: 8 }),
  extraBudget: fc.integer({ min: 0, max: 40 }),
  enableChunkedPrefill: fc.boolean(),
  preemptionMode: fc.constantFrom('recompute' as const, 'swap' as const),
  maxModelLen: fc.integer({ min: 8, max: 96 }),
});

const requestSpec = fc.record({
  at: fc.integer({ min: 0, max: 20 }),
  prefix: fc.integer({ min: 0, max: 2 }),
  prefixLen: fc.integer({ min: 0, max: 24 }),
  suffixLen: fc.integer({ min: 1, max: 12 }),
  n: fc.constantFrom(1, 1, 2, 3),
  maxTokens: fc.integer({ min: 1, max: 16 }),
  abortAt: fc.option(fc.integer({ min: 0, max: 60 }), { freq: 3 }),
});

type Config = typeof config extends fc.Arbitrary<infer T> ? T : never;
type RequestSpec = typeof requestSpec extends fc.Arbitrary<infer T> ? T : never;

function simulate(c: Config, specs: RequestSpec[], seed: number) {
  const random = rng(seed);
  const token = () => Math.floor(random() * 3);
  const prefixes = [0, 1, 2].map(() => Array.from({ length: 24 }, token));
  const bm = new BlockManager({ ...c, numBlocks: Math.ceil(c.slots / c.blockSize), hashBlock: c.collide ? () => 'k' : undefined });
  const sched = new Scheduler({ ...c, maxNumBatchedTokens: c.maxNumSeqs + c.extraBudget }, bm);
  const eng = new FakeEngine(sched, {
    sample: token,
    // stop at maxTokens, or earlier at random
    stop: (s, g) => s.numOutputTokens >= g.params.maxTokens || random() < 0.1,
  });
  const groups = specs.map((r, i) => new SequenceGroup(`r${i}`, [...prefixes[r.prefix].slice(0, r.prefixLen), ...Array.from({ length: r.suffixLen }, token)], { n: r.n, maxTokens: r.maxTokens }, i));
  const order = specs.map((_, i) => i).sort((a, b) => specs[a].at - specs[b].at || a - b);
  let next = 0;
  for (let step = 0; next < order.length || sched.hasUnfinished(); step++) {
    if (step > 2000) throw new Error('stalled: still unfinished after 2000 steps');
    while (next < order.length && specs[order[next]].at <= step) sched.addRequest(groups[order[next++]]);
    for (const [i, r] of specs.entries()) if (r.abortAt === step) sched.abort(`r${i}`);
    bm.check();
    if (!sched.hasUnfinished()) continue;
    const out = eng.step();
    const progress = out.scheduled.length + out.ignored.length + out.preempted.length;
    if (progress === 0) throw new Error(`stalled at step ${step}: nothing scheduled, ignored or preempted`);
  }
  // every request ended, every block is free or cached
  for (const g of groups) expect(g.isFinished).toBe(true);
  expect(bm.usage()).toMatchObject({ usedBlocks: 0, usedHostBlocks: 0, wastedSlots: 0 });
  expect(bm.numOwners).toBe(0);
  expect(sched.stats()).toMatchObject({ numRunning: 0, numWaiting: 0, numSwapped: 0 });
  bm.check();
  for (const g of groups) {
    const reasons = new Set(g.seqs.map((s) => s.finishReason));
    if (reasons.has('abort') || reasons.has('ignored')) continue;
    expect(g.seqs).toHaveLength(g.params.n);
    for (const s of g.seqs) {
      expect(s.numOutputTokens).toBeGreaterThan(0);
      expect(s.numOutputTokens).toBeLessThanOrEqual(g.params.maxTokens);
    }
  }
  return { sched, groups };
}

describe('scheduler properties', () => {
  it('random request streams keep the block accounting exact and every sequence reading its own K/V', () => {
    fc.assert(
      fc.property(config, fc.array(requestSpec, { minLength: 1, maxLength: 12 }), fc.integer(), (c, specs, seed) => {
        simulate(c, specs, seed);
      }),
      { numRuns: 400 },
    );
  });

  it('a cramped cache preempts, and every request that was not aborted still finishes', () => {
    let preemptions = 0;
    let swaps = 0;
    fc.assert(
      fc.property(
        config.map((c): Config => ({ ...c, slots: 32 + (c.slots % 32), blockSize: 2, watermark: 0, maxNumSeqs: 6, maxModelLen: 64 })),
        fc.array(requestSpec.map((r) => ({ ...r, abortAt: null, at: 0 })), { minLength: 3, maxLength: 8 }),
        fc.integer(),
        (c, specs, seed) => {
          const { sched, groups } = simulate(c, specs, seed);
          preemptions += sched.numPreemptions;
          swaps += sched.blockManager.numHostBlocks > 0 ? 1 : 0;
          for (const g of groups) expect(g.seqs.every((s) => s.finishReason !== 'abort')).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
    expect(preemptions).toBeGreaterThan(50); // the generator does reach preemption
    expect(swaps).toBeGreaterThan(0);
  });
});

// The scheduler with fake requests and a fake model (fake-engine.ts), in the style of vLLM v1's
// tests/v1/core/test_scheduler.py: no GPU, just which sequences run each step, with how many
// tokens, and where their blocks go.

import { describe, expect, it } from 'vitest';
import type { SchedulerOutput } from '../../src/engine/scheduler.ts';
import type { Sequence, SequenceGroup } from '../../src/engine/sequence.ts';
import { FakeEngine, makeScheduler, request } from './fake-engine.ts';

/** requestId -> numNewTokens of its first sequence in this step. */
const tokensOf = (out: SchedulerOutput) => Object.fromEntries(out.scheduled.filter((e) => e.seq === e.group.seqs[0]).map((e) => [e.group.requestId, e.numNewTokens]));
/** A token that depends only on the sequence's position and its place in its group, so reruns agree. */
const positional = (groupOf: (s: Sequence) => SequenceGroup) => (s: Sequence) => s.numTokens * 10 + groupOf(s).seqs.indexOf(s);

describe('admission', () => {
  it('admits whole prompts FCFS while the token budget lasts (chunked prefill off)', () => {
    const sched = makeScheduler({ maxNumBatchedTokens: 20, enableChunkedPrefill: false });
    for (const id of ['a', 'b', 'c']) sched.addRequest(request(8, {}, id));
    const eng = new FakeEngine(sched);
    expect(tokensOf(eng.step())).toEqual({ a: 8, b: 8 });
    expect(sched.waiting.map((g) => g.requestId)).toEqual(['c']);
    expect(tokensOf(eng.step())).toEqual({ a: 1, b: 1, c: 8 });
  });

  it('with chunked prefill, the next prompt takes what is left of the budget', () => {
    const sched = makeScheduler({ maxNumBatchedTokens: 20 });
    for (const id of ['a', 'b', 'c']) sched.addRequest(request(8, {}, id));
    const out = new FakeEngine(sched).step();
    expect(tokensOf(out)).toEqual({ a: 8, b: 8, c: 4 });
    expect(out.scheduled.map((e) => e.sample)).toEqual([true, true, false]);
    expect(out.scheduled.every((e) => e.isPrefill)).toBe(true);
  });

  it('stops at maxNumSeqs, counting a request with n > 1 as n sequences before it forks', () => {
    const sched = makeScheduler({ maxNumSeqs: 4 });
    sched.addRequest(request(4, { n: 3 }, 'three'));
    sched.addRequest(request(4, { n: 2 }, 'two'));
    sched.addRequest(request(4, {}, 'one'));
    const eng = new FakeEngine(sched);
    expect(tokensOf(eng.step())).toEqual({ three: 4 }); // 'two' would make 5; FCFS: 'one' waits behind it
    const out = eng.step();
    expect(out.scheduled.filter((e) => e.group.requestId === 'three')).toHaveLength(3);
    expect(sched.waiting.map((g) => g.requestId)).toEqual(['two', 'one']);
  });

  it('serves FCFS: a request that does not fit yet holds back the smaller ones behind it', () => {
    const sched = makeScheduler({}, { numBlocks: 10 });
    sched.addRequest(request(28, { maxTokens: 3 }, 'first')); // 7 blocks
    const eng = new FakeEngine(sched);
    eng.step();
    sched.addRequest(request(20, {}, 'big')); // 5 blocks: later
    sched.addRequest(request(4, {}, 'small')); // 1 block would fit now
    const admitted: string[] = [];
    while (sched.hasUnfinished()) {
      const out = eng.step();
      for (const e of out.scheduled) if (e.numCachedTokens === 0 && !admitted.includes(e.group.requestId)) admitted.push(e.group.requestId);
      if (!admitted.includes('big')) expect(admitted).not.toContain('small');
    }
    expect(admitted).toEqual(['big', 'small']);
  });
});

describe('chunked prefill', () => {
  it('splits a prompt longer than the budget over steps, next to running decodes', () => {
    const sched = makeScheduler({ maxNumBatchedTokens: 16, maxNumSeqs: 4 });
    sched.addRequest(request(4, { maxTokens: 30 }, 'a'));
    sched.addRequest(request(4, { maxTokens: 30 }, 'b'));
    const eng = new FakeEngine(sched);
    eng.step();
    sched.addRequest(request(50, { maxTokens: 2 }, 'long'));
    const steps = [1, 2, 3, 4].map(() => eng.step());
    expect(steps.map(tokensOf)).toEqual([
      { a: 1, b: 1, long: 14 },
      { a: 1, b: 1, long: 14 },
      { a: 1, b: 1, long: 14 },
      { a: 1, b: 1, long: 8 },
    ]);
    const long = (out: SchedulerOutput) => out.scheduled.find((e) => e.group.requestId === 'long')!;
    expect(steps.map((s) => long(s).numCachedTokens)).toEqual([0, 14, 28, 42]);
    expect(steps.map((s) => long(s).sample)).toEqual([false, false, false, true]);
    expect(tokensOf(eng.step())).toEqual({ a: 1, b: 1, long: 1 });
  });

  it('with chunked prefill off, ignores a prompt longer than the budget', () => {
    const sched = makeScheduler({ maxNumBatchedTokens: 16, enableChunkedPrefill: false });
    sched.addRequest(request(17, {}, 'long'));
    sched.addRequest(request(16, {}, 'ok'));
    const out = sched.schedule();
    expect(out.ignored.map((i) => [i.group.requestId, i.code])).toEqual([['long', 'prompt-exceeds-budget']]);
    expect(out.ignored[0].reason).toMatch(/chunked prefill/);
    expect(tokensOf(out)).toEqual({ ok: 16 });
  });
});

describe('preemption', () => {
  /** Two requests whose outputs cannot both fit: 6 blocks of 4, each grows to 8 + 12 tokens = 5 blocks. */
  function crowded(numBlocks: number, mode: 'recompute' | 'swap' = 'recompute', numHostBlocks = 0) {
    const sched = makeScheduler({ preemptionMode: mode }, { numBlocks, numHostBlocks });
    const groups = [request([1, 2, 3, 4, 5, 6, 7, 8], { maxTokens: 12 }, 'old'), request([9, 8, 7, 6, 5, 4, 3, 2], { maxTokens: 12 }, 'new')];
    for (const g of groups) sched.addRequest(g);
    const groupOf = (s: Sequence) => groups.find((g) => g.seqs.includes(s))!;
    const eng = new FakeEngine(sched, { sample: positional(groupOf) });
    return { sched, groups, outs: eng.run(200) };
  }

  it('recomputes the newest request when blocks run out; it finishes later with the same tokens', () => {
    const roomy = crowded(64);
    expect(roomy.sched.numPreemptions).toBe(0);
    const { sched, groups, outs } = crowded(6);
    const preemptedAt = outs.findIndex((o) => o.preempted.length > 0);
    expect(preemptedAt).toBeGreaterThan(0);
    expect(outs[preemptedAt].preempted.map((g) => g.requestId)).toEqual(['new']);
    expect(outs[preemptedAt].blocksToSwapOut).toEqual([]);
    expect(sched.numPreemptions).toBeGreaterThanOrEqual(1);
    // back, it re-prefills prompt + the output it had
    const again = outs.slice(preemptedAt + 1).map((o) => o.scheduled.find((e) => e.group.requestId === 'new')).find((e) => e !== undefined)!;
    expect(again.isPrefill).toBe(true);
    expect(again.numCachedTokens + again.numNewTokens).toBeGreaterThan(8);
    for (const [i, g] of groups.entries()) {
      expect(g.seqs[0].numOutputTokens).toBe(12);
      expect(g.seqs[0].tokenIds).toEqual(roomy.groups[i].seqs[0].tokenIds);
    }
  });

  it('swaps out a request with several live sequences, and brings it back', () => {
    const sched = makeScheduler({}, { numBlocks: 8, numHostBlocks: 16 });
    const groups = [request(8, { maxTokens: 10 }, 'one'), request(8, { n: 2, maxTokens: 10 }, 'pair')];
    for (const g of groups) sched.addRequest(g);
    const groupOf = (s: Sequence) => groups.find((g) => g.seqs.includes(s))!;
    const outs = new FakeEngine(sched, { sample: positional(groupOf) }).run(200);
    const out = outs.find((o) => o.preempted.length > 0)!;
    expect(out.preempted.map((g) => g.requestId)).toEqual(['pair']);
    expect(out.blocksToSwapOut.length).toBeGreaterThan(0);
    expect(outs.some((o) => o.blocksToSwapIn.length > 0)).toBe(true);
    expect(groups[1].seqs.map((s) => s.numOutputTokens)).toEqual([10, 10]);
    expect(groups[1].seqs[0].outputTokenIds).not.toEqual(groups[1].seqs[1].outputTokenIds);
    expect(sched.blockManager.usage()).toMatchObject({ usedBlocks: 0, usedHostBlocks: 0 });
  });

  it('swaps single sequences too in swap mode', () => {
    const { outs, groups } = crowded(6, 'swap', 16);
    const out = outs.find((o) => o.preempted.length > 0)!;
    expect(out.blocksToSwapOut.length).toBeGreaterThan(0);
    expect(groups.map((g) => g.seqs[0].numOutputTokens)).toEqual([12, 12]);
  });

  it('falls back to recompute when the host pool is too small', () => {
    const { outs, groups } = crowded(6, 'swap', 1);
    expect(outs.find((o) => o.preempted.length > 0)!.blocksToSwapOut).toEqual([]);
    expect(groups.map((g) => g.seqs[0].numOutputTokens)).toEqual([12, 12]);
  });
});

describe('copy-on-write', () => {
  it('forks n sequences onto the prompt\'s blocks; the first to append copies the shared partial block', () => {
    const sched = makeScheduler({}, { numBlocks: 8 });
    const g = request(6, { n: 2, maxTokens: 4 });
    sched.addRequest(g);
    const eng = new FakeEngine(sched, { sample: (s) => s.seqId });
    const first = eng.step();
    expect(first.scheduled).toHaveLength(1);
    expect(g.seqs).toHaveLength(2);
    expect(g.seqs[1].blockTable).toEqual(g.seqs[0].blockTable);
    const second = eng.step();
    expect(second.scheduled.map((e) => e.numNewTokens)).toEqual([1, 1]);
    expect(second.blocksToCopy).toEqual([[g.seqs[1].blockTable[1], g.seqs[0].blockTable[1]]]);
    expect(g.seqs[0].blockTable[0]).toBe(g.seqs[1].blockTable[0]);
    eng.run(50);
  });
});

describe('prefix caching', () => {
  const system = Array.from({ length: 16 }, (_, i) => 500 + i);

  it('a second request reuses the first one\'s full blocks and computes only the rest', () => {
    const sched = makeScheduler({}, { blockSize: 4 });
    const eng = new FakeEngine(sched);
    const a = request([...system, 1, 2, 3, 4], {}, 'a');
    sched.addRequest(a);
    eng.step();
    const b = request([...system, 9, 9, 9, 9, 9], {}, 'b');
    sched.addRequest(b);
    const out = eng.step();
    const e = out.scheduled.find((x) => x.group === b)!;
    expect([e.numCachedTokens, e.numNewTokens]).toEqual([16, 5]);
    expect(b.seqs[0].blockTable.slice(0, 4)).toEqual(a.seqs[0].blockTable.slice(0, 4));
    expect(sched.stats()).toMatchObject({ prefixCacheQueriedTokens: 20 + 21, prefixCacheHitTokens: 16 });
    eng.run();
  });

  it('keeps finished requests\' blocks cached until newer work evicts them', () => {
    const sched = makeScheduler({}, { numBlocks: 8, blockSize: 4 });
    const eng = new FakeEngine(sched);
    sched.addRequest(request([...system, 1], { maxTokens: 1 }));
    eng.run();
    expect(sched.blockManager.usage()).toMatchObject({ usedBlocks: 0, cachedBlocks: 4 });
    sched.addRequest(request([...system, 2], { maxTokens: 1 }, 'hit'));
    let out = eng.step();
    expect(out.scheduled[0].numCachedTokens).toBe(16);
    eng.run();
    sched.addRequest(request(24, { maxTokens: 1 }, 'evicts')); // 6 blocks of 8: evicts 2 cached
    eng.run();
    sched.addRequest(request([...system, 3], { maxTokens: 1 }, 'partial'));
    out = eng.step();
    expect(out.scheduled[0].numCachedTokens).toBe(8); // the head of the prefix survived, its tail went first
  });
});

describe('abort, ignore, misuse', () => {
  it('abort frees a running request\'s blocks at once, and one that forked', () => {
    const sched = makeScheduler({ maxNumSeqs: 2 }, { numBlocks: 8, numHostBlocks: 8, enablePrefixCaching: false });
    sched.addRequest(request(8, {}, 'run'));
    sched.addRequest(request(8, { n: 2 }, 'pair'));
    const eng = new FakeEngine(sched);
    eng.step();
    const bm = sched.blockManager;
    expect(bm.usage().usedBlocks).toBe(2);
    expect(sched.waiting.map((g) => g.requestId)).toEqual(['pair']);
    expect(sched.abort('run')).toBe(true);
    expect(bm.usage().usedBlocks).toBe(0);
    expect(sched.abort('run')).toBe(false);
    eng.step();
    eng.step(); // pair forked and decoding
    expect(sched.running.map((g) => g.requestId)).toEqual(['pair']);
    const pair = sched.running[0];
    expect(sched.abort('pair')).toBe(true);
    expect(pair.seqs.map((s) => s.finishReason)).toEqual(['abort', 'abort']);
    expect(bm.usage()).toMatchObject({ usedBlocks: 0, usedHostBlocks: 0 });
    expect(sched.hasUnfinished()).toBe(false);
    bm.check();
  });

  it('abort of a swapped request frees its host blocks', () => {
    const sched = makeScheduler({}, { numBlocks: 8, numHostBlocks: 16 });
    sched.addRequest(request(8, { maxTokens: 20 }, 'one'));
    sched.addRequest(request(8, { n: 2, maxTokens: 20 }, 'pair'));
    const eng = new FakeEngine(sched, { sample: (s) => s.seqId });
    while (sched.swapped.length === 0) eng.step();
    expect(sched.blockManager.usage().usedHostBlocks).toBeGreaterThan(0);
    sched.abort('pair');
    expect(sched.blockManager.usage().usedHostBlocks).toBe(0);
    sched.blockManager.check();
    eng.run();
  });

  it('rejects, with a reason, a prompt longer than maxModelLen and one that can never fit the cache', () => {
    const sched = makeScheduler({ maxModelLen: 32 }, { numBlocks: 100, watermark: 0.1 });
    sched.addRequest(request(33, {}, 'long'));
    sched.addRequest(request(8, {}, 'fine'));
    const out = sched.schedule();
    expect(out.ignored.map((i) => [i.group.requestId, i.code])).toEqual([
      ['long', 'prompt-too-long'],
    ]);
    expect(out.ignored[0].reason).toMatch(/33 tokens.*maximum length of 32/);
    expect(out.ignored[0].group.seqs[0].finishReason).toBe('ignored');
    expect(tokensOf(out)).toEqual({ fine: 8 });

    const big = makeScheduler({ maxModelLen: 4096 }, { numBlocks: 100, watermark: 0.1 });
    big.addRequest(request(4 * 91, {}, 'never'));
    big.addRequest(request(4 * 90, {}, 'fits'));
    const o2 = big.schedule();
    expect(o2.ignored.map((i) => [i.group.requestId, i.code])).toEqual([['never', 'cannot-fit']]);
    expect(o2.ignored[0].reason).toMatch(/364 tokens.*100 blocks, 10 kept free/);
    expect(tokensOf(o2)).toEqual({ fits: 360 });
  });

  it('keeps the watermark free when admitting, not when running sequences grow', () => {
    const sched = makeScheduler({ maxNumBatchedTokens: 4096 }, { numBlocks: 100, watermark: 0.1 });
    sched.addRequest(request(4 * 85, {}, 'a'));
    sched.addRequest(request(4 * 6, {}, 'b')); // 85 + 6 = 91 > 90
    const out = sched.schedule();
    expect(tokensOf(out)).toEqual({ a: 340 });
    expect(sched.waiting.map((g) => g.requestId)).toEqual(['b']);
  });

  it('fails loudly on engine bugs: schedule() before update(), a sampled token never appended', () => {
    const sched = makeScheduler();
    sched.addRequest(request(4));
    const out = sched.schedule();
    expect(() => sched.schedule()).toThrow(/update/);
    sched.update(out);
    expect(() => sched.schedule()).toThrow(/nothing to compute/);
    expect(() => sched.addRequest(out.scheduled[0].group)).toThrow(/already/);
  });

  it('reports counts for metrics', () => {
    const sched = makeScheduler({ maxNumSeqs: 1 });
    sched.addRequest(request(4));
    sched.addRequest(request(4, {}, 'later'));
    new FakeEngine(sched).step();
    expect(sched.stats()).toMatchObject({ numRunning: 1, numWaiting: 1, numSwapped: 0, numRunningSeqs: 1, numPreemptions: 0 });
    expect(sched.stats().kvCacheUsage).toBeCloseTo(1 / 64);
  });
});

describe('pending tokens (step overlap)', () => {
  it('schedules the decode of a pending token, but not one that is the sequence\'s last', () => {
    const sched = makeScheduler({});
    sched.addRequest(request(4, {}, 'a'));
    sched.addRequest(request(4, { maxTokens: 1 }, 'b'));
    const first = sched.schedule();
    sched.update(first);
    const [a, b] = first.scheduled.map((e) => e.seq);
    // the step that samples them is still on the device: placeholders for rows 0 and 1
    a.appendPending(-2);
    b.appendPending(-3); // its first and last token (max_tokens 1)
    const next = sched.schedule();
    expect(next.scheduled.map((e) => [e.group.requestId, e.numCachedTokens, e.numNewTokens])).toEqual([['a', 4, 1]]);
    sched.update(next);
    a.resolvePending(7);
    b.resolvePending(8);
    expect(a.tokenIds.slice(4)).toEqual([7]);
    sched.finish(b, 'length');
    expect(() => a.resolvePending(9)).toThrow(/no pending token/);
  });

  it('does not admit a preempted request again while its last token is pending', () => {
    const sched = makeScheduler({}, { numBlocks: 4, blockSize: 4 });
    sched.addRequest(request(8, {}, 'old'));
    sched.addRequest(request(7, {}, 'new'));
    const first = sched.schedule();
    sched.update(first);
    first.scheduled.forEach((e, row) => e.seq.appendPending(-2 - row));
    // both need a third block for the next token... 4 blocks: 'new' is preempted (recompute)
    const out = sched.schedule();
    expect(out.preempted.map((g) => g.requestId)).toEqual(['new']);
    sched.update(out);
    const victim = sched.waiting[0].seqs[0];
    expect(victim.hasPending).toBe(true);
    // 'old' finishes: room again, but the victim's token is not known yet
    sched.finish(sched.running[0]);
    expect(sched.schedule().scheduled).toHaveLength(0);
    victim.resolvePending(5);
    // its first block comes from the prefix cache; the rest (with the resolved token) is recomputed
    expect(sched.schedule().scheduled.map((e) => [e.group.requestId, e.numCachedTokens, e.numNewTokens])).toEqual([['new', 4, 4]]);
  });
});

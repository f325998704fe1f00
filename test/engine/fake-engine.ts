// A fake model for scheduler tests: it runs the engine loop against a pretend KV cache in which
// the slot of each token holds a fingerprint of the sequence up to that token. It applies the
// scheduler's swap and copy-on-write pairs to that cache, writes the tokens each step computes,
// then checks that every position a scheduled sequence attends to holds what the sequence
// itself would have written there. A wrong prefix-cache hit, a lost copy or a block handed to
// two owners shows up as a wrong fingerprint.

import { expect } from 'vitest';
import { BlockManager, type BlockManagerConfig } from '../../src/engine/block-manager.ts';
import { Scheduler, type SchedulerConfig, type SchedulerOutput } from '../../src/engine/scheduler.ts';
import { type Sequence, SequenceGroup } from '../../src/engine/sequence.ts';

export function makeScheduler(sc: Partial<SchedulerConfig> = {}, bc: Partial<BlockManagerConfig> = {}): Scheduler {
  const bm = new BlockManager({ numBlocks: 64, blockSize: 4, watermark: 0, ...bc });
  return new Scheduler({ maxModelLen: 1024, ...sc }, bm);
}

let nextRequest = 0;
/** A request with this prompt, or with this many tokens that no other request's prompt starts with. */
export function request(prompt: number | number[], params: { n?: number; maxTokens?: number } = {}, id = `r${nextRequest}`): SequenceGroup {
  const base = 100_000 * ++nextRequest;
  const tokens = typeof prompt === 'number' ? Array.from({ length: prompt }, (_, i) => base + i) : prompt;
  return new SequenceGroup(id, tokens, { n: params.n ?? 1, maxTokens: params.maxTokens ?? 16 });
}

/** Per sequence and position, a fingerprint of tokens [0, position]: two lanes of a polynomial hash, < 2^52. */
const fingerprints = new WeakMap<Sequence, number[]>();
function fingerprint(seq: Sequence, pos: number): number {
  let fp = fingerprints.get(seq);
  if (fp === undefined) fingerprints.set(seq, (fp = []));
  for (let p = fp.length; p <= pos; p++) {
    const prev = p === 0 ? 0 : fp[p - 1];
    const a = ((Math.floor(prev / 2 ** 26) * 1000003 + seq.tokenIds[p] + 1) % 67108859) * 2 ** 26;
    const b = ((prev % 2 ** 26) * 999983 + seq.tokenIds[p] + 7) % 67108837;
    fp.push(a + b);
  }
  return fp[pos];
}

export interface FakeEngineOptions {
  /** The next token of seq (default: 7). */
  sample?: (seq: Sequence) => number;
  /** Whether seq stops after its latest token (default: at the group's maxTokens). The engine also stops at maxModelLen. */
  stop?: (seq: Sequence, group: SequenceGroup) => boolean;
}

export class FakeEngine {
  readonly bm: BlockManager;
  private readonly device: Float64Array;
  private readonly host: Float64Array;
  steps = 0;

  constructor(
    readonly sched: Scheduler,
    private readonly opts: FakeEngineOptions = {},
  ) {
    this.bm = sched.blockManager;
    this.device = new Float64Array(this.bm.numBlocks * this.bm.blockSize).fill(-1);
    this.host = new Float64Array(this.bm.numHostBlocks * this.bm.blockSize).fill(-1);
  }

  /** One engine step, checking the scheduler's promises along the way. */
  step(): SchedulerOutput {
    const { sched, bm } = this;
    const bs = bm.blockSize;
    const waitingBefore = new Set(sched.waiting);
    const out = sched.schedule();
    this.steps++;
    bm.check();
    this.checkOutput(out, waitingBefore);

    const copy = (from: Float64Array, src: number, to: Float64Array, dst: number) => to.set(from.subarray(src * bs, (src + 1) * bs), dst * bs);
    for (const [d, h] of out.blocksToSwapOut) copy(this.device, d, this.host, h);
    for (const [h, d] of out.blocksToSwapIn) copy(this.host, h, this.device, d);
    for (const [src, dst] of out.blocksToCopy) copy(this.device, src, this.device, dst);
    const slot = (seq: Sequence, p: number) => seq.blockTable[Math.floor(p / bs)] * bs + (p % bs);
    for (const e of out.scheduled) {
      for (let p = e.numCachedTokens; p < e.numCachedTokens + e.numNewTokens; p++) this.device[slot(e.seq, p)] = fingerprint(e.seq, p);
    }
    // attention: every position up to the newest must hold this sequence's own K/V
    for (const e of out.scheduled) {
      for (let p = 0; p < e.numCachedTokens + e.numNewTokens; p++) {
        if (this.device[slot(e.seq, p)] !== fingerprint(e.seq, p)) throw new Error(`step ${this.steps}: sequence ${e.seq.seqId} reads wrong K/V at position ${p} (block ${e.seq.blockTable[Math.floor(p / bs)]})`);
      }
    }

    sched.update(out);
    bm.check();
    const maxModelLen = sched.config.maxModelLen;
    for (const e of out.scheduled) {
      if (!e.sample || e.seq.status !== 'running') continue;
      const seqs = e.group.needsFork ? sched.fork(e.group) : [e.seq];
      for (const s of seqs) {
        s.appendToken(this.opts.sample?.(s) ?? 7);
        const stop = this.opts.stop ? this.opts.stop(s, e.group) : s.numOutputTokens >= e.group.params.maxTokens;
        if (stop || s.numTokens >= maxModelLen) sched.finish(s, stop ? 'stop' : 'length');
      }
    }
    bm.check();
    return out;
  }

  /** Steps until nothing is left (or throws after maxSteps: the scheduler stalled). */
  run(maxSteps = 10_000): SchedulerOutput[] {
    const outs: SchedulerOutput[] = [];
    while (this.sched.hasUnfinished()) {
      if (this.steps >= maxSteps) throw new Error(`still unfinished after ${maxSteps} steps`);
      outs.push(this.step());
    }
    return outs;
  }

  private checkOutput(out: SchedulerOutput, waitingBefore: Set<SequenceGroup>): void {
    const { sched, bm } = this;
    // FCFS: a request is admitted only once every earlier waiting one is admitted or ignored
    const admitted = sched.running.filter((g) => waitingBefore.has(g));
    const newest = Math.max(-1, ...admitted.map((g) => g.arrival));
    for (const g of sched.waiting) expect(g.arrival > newest, `request ${g.requestId} passed over`).toBe(true);
    if (admitted.length > 0) expect(out.preempted).toEqual([]);
    expect(out.numBatchedTokens).toBeLessThanOrEqual(sched.config.maxNumBatchedTokens);
    expect(out.numBatchedTokens).toBe(out.scheduled.reduce((n, e) => n + e.numNewTokens, 0));
    const seen = new Set<Sequence>();
    for (const e of out.scheduled) {
      expect(seen.has(e.seq), 'a sequence scheduled twice').toBe(false);
      seen.add(e.seq);
      expect(e.seq.status).toBe('running');
      expect(e.numNewTokens).toBeGreaterThan(0);
      expect(e.numCachedTokens).toBe(e.seq.numCachedTokens);
      expect(e.numCachedTokens + e.numNewTokens).toBeLessThanOrEqual(e.seq.numTokens);
    }
    let seqs = 0;
    for (const g of sched.running) {
      for (const s of g.liveSeqs) {
        seqs++;
        expect(s.status).toBe('running');
        // no sequence ever has fewer slots than tokens
        expect(s.blockTable.length * bm.blockSize).toBeGreaterThanOrEqual(s.numTokens);
        // a running sequence with one token left decodes every step
        if (s.numTokens - s.numCachedTokens === 1) expect(seen.has(s)).toBe(true);
      }
      seqs += g.needsFork ? g.params.n - 1 : 0;
    }
    expect(seqs).toBeLessThanOrEqual(sched.config.maxNumSeqs);
    for (const g of sched.waiting) for (const s of g.liveSeqs) expect([s.status, s.blockTable.length]).toEqual(['waiting', 0]);
    for (const g of sched.swapped) for (const s of g.liveSeqs) expect(s.status).toBe('swapped');
  }
}

// Iteration-level scheduling (continuous batching): every step decides which sequences run and
// how many of their tokens, under a token budget, a sequence cap and the KV blocks there are.
//
// One step, in order:
//   1. decodes of running sequences, oldest request first, one token each. When the block manager
//      cannot give a sequence its next slot, the newest running request is preempted: by
//      recompute (blocks freed, back to waiting with its output kept, re-prefilled later) or, for
//      a request with several live sequences (or preemptionMode 'swap'), by swapping its blocks
//      to the host.
//   2. prefill chunks of running sequences whose prompt is not all computed yet.
//   3. swapped requests back in, FCFS (not in a step that preempted).
//   4. waiting requests admitted FCFS while budget, seq cap and blocks allow (not in a step that
//      preempted, nor while anything is swapped out). With chunked prefill a prompt takes what is
//      left of the budget and goes on next step, beside the decodes rather than stalling them.
// Every queue is kept in arrival order, so FCFS and "newest" mean the same thing everywhere.
//
// The engine's loop: schedule(), copy blocks (swap out, swap in, copy-on-write, in that order),
// run the model on `scheduled`, update(), then sample for the entries with `sample`, fork
// requests that need it, append the tokens and finish() the sequences that stop. With step
// overlap the engine appends a pending token (Sequence.appendPending) for each sampled entry as
// soon as the step is on the device, schedules and launches the next step, and only then
// resolves the tokens of the first: a sequence is scheduled at most one step past what the host
// knows, and one whose pending token is its last is not scheduled again.

import type { AllocStatus, BlockManager } from './block-manager.ts';
import type { IgnoreCode, SchedulerOutput } from './scheduler-output.ts';
import type { FinishReason, Sequence, SequenceGroup } from './sequence.ts';

export type { IgnoreCode, IgnoredGroup, ScheduledSeq, SchedulerOutput } from './scheduler-output.ts';

export interface SchedulerConfig {
  /** Sequences running at once (a request with n > 1 counts n). Default 256, or maxNumBatchedTokens if smaller. */
  maxNumSeqs?: number;
  /**
   * Tokens per step, prefill and decode together. Default 2048: with 256 sequences decoding, a
   * step still has 1792 tokens for prompts, and the step's latency stays bounded so decoding
   * sequences keep a steady pace while long prompts arrive. Must be >= maxNumSeqs.
   */
  maxNumBatchedTokens?: number;
  /** Longest sequence the model takes; longer prompts are ignored. */
  maxModelLen: number;
  /** Split prompts over steps (default true). Off: a prompt runs whole in one step, or waits. */
  enableChunkedPrefill?: boolean;
  /** 'recompute' (default): swap only requests with several live sequences; 'swap': swap any. Both recompute when the host pool is full. */
  preemptionMode?: 'recompute' | 'swap';
}

export interface SchedulerStats {
  numRunning: number;
  numWaiting: number;
  numSwapped: number;
  numRunningSeqs: number;
  numPreemptions: number;
  prefixCacheQueriedTokens: number;
  prefixCacheHitTokens: number;
  /** Used device blocks / all device blocks. */
  kvCacheUsage: number;
}

export class Scheduler {
  readonly config: Readonly<Required<SchedulerConfig>>;
  private readonly waitingQ: SequenceGroup[] = [];
  private readonly runningQ: SequenceGroup[] = [];
  private readonly swappedQ: SequenceGroup[] = [];
  private readonly groups = new Map<string, SequenceGroup>();
  private readonly groupOf = new Map<Sequence, SequenceGroup>();
  private pending: SchedulerOutput | null = null;
  numPreemptions = 0;

  constructor(
    config: SchedulerConfig,
    readonly blockManager: BlockManager,
  ) {
    const maxNumBatchedTokens = config.maxNumBatchedTokens ?? 2048;
    const maxNumSeqs = config.maxNumSeqs ?? Math.min(256, maxNumBatchedTokens);
    this.config = {
      maxNumSeqs,
      maxNumBatchedTokens,
      maxModelLen: config.maxModelLen,
      enableChunkedPrefill: config.enableChunkedPrefill ?? true,
      preemptionMode: config.preemptionMode ?? 'recompute',
    };
    if (maxNumBatchedTokens < maxNumSeqs) throw new Error(`maxNumBatchedTokens (${maxNumBatchedTokens}) must be >= maxNumSeqs (${maxNumSeqs}): every running sequence decodes one token a step`);
  }

  get waiting(): readonly SequenceGroup[] {
    return this.waitingQ;
  }
  get running(): readonly SequenceGroup[] {
    return this.runningQ;
  }
  get swapped(): readonly SequenceGroup[] {
    return this.swappedQ;
  }

  addRequest(group: SequenceGroup): void {
    if (this.groups.has(group.requestId)) throw new Error(`request ${group.requestId} is already scheduled`);
    if (group.isFinished || group.seqs.some((s) => s.status !== 'waiting')) throw new Error(`request ${group.requestId} is not new`);
    this.groups.set(group.requestId, group);
    for (const s of group.seqs) this.groupOf.set(s, group);
    insert(this.waitingQ, group);
  }

  /** Ends a request from whatever queue it is in, freeing its blocks at once. False if unknown or already finished. */
  abort(requestId: string): boolean {
    const group = this.groups.get(requestId);
    if (group === undefined) return false;
    this.end(group, 'abort');
    return true;
  }

  /** The engine decided seq (or every sequence of a group) is done: frees its blocks. */
  finish(target: Sequence | SequenceGroup, reason: FinishReason = 'stop'): void {
    const group = 'seqs' in target ? target : this.groupOf.get(target);
    if (group === undefined) return;
    if ('seqs' in target) return this.end(group, reason);
    this.endSeq(target, reason);
    if (group.isFinished) this.end(group, reason);
  }

  /** The first sequence's prompt is computed and n > 1: make the siblings, sharing its blocks. Returns all n sequences. */
  fork(group: SequenceGroup): Sequence[] {
    const parent = group.seqs[0];
    if (parent.status !== 'running' || parent.numCachedTokens !== parent.numTokens) throw new Error(`fork: request ${group.requestId} has not just computed its prompt`);
    for (const child of group.fork()) {
      this.blockManager.fork(parent, child);
      this.groupOf.set(child, group);
    }
    return group.seqs;
  }

  hasUnfinished(): boolean {
    return this.groups.size > 0;
  }

  stats(): SchedulerStats {
    const bm = this.blockManager;
    return {
      numRunning: this.runningQ.length,
      numWaiting: this.waitingQ.length,
      numSwapped: this.swappedQ.length,
      numRunningSeqs: this.runningSeqs(),
      numPreemptions: this.numPreemptions,
      prefixCacheQueriedTokens: bm.prefixQueriedTokens,
      prefixCacheHitTokens: bm.prefixHitTokens,
      kvCacheUsage: bm.usage().usedBlocks / bm.numBlocks,
    };
  }

  schedule(): SchedulerOutput {
    if (this.pending) throw new Error('schedule() before update() of the previous step');
    const out: SchedulerOutput = { scheduled: [], numBatchedTokens: 0, blocksToSwapOut: [], blocksToSwapIn: [], blocksToCopy: [], preempted: [], ignored: [] };
    const bm = this.blockManager;
    const { maxNumBatchedTokens, maxNumSeqs, enableChunkedPrefill } = this.config;
    let budget = maxNumBatchedTokens;
    const add = (group: SequenceGroup, seq: Sequence, numNewTokens: number) => {
      const left = seq.numTokens - seq.numCachedTokens;
      out.scheduled.push({ group, seq, numCachedTokens: seq.numCachedTokens, numNewTokens, isPrefill: left > 1, sample: numNewTokens === left });
      out.numBatchedTokens += numNewTokens;
      budget -= numNewTokens;
    };
    const decode = (group: SequenceGroup, seqs: readonly Sequence[]) => {
      for (const seq of seqs) {
        const copy = bm.appendSlot(seq);
        if (copy) out.blocksToCopy.push(copy);
        add(group, seq, 1);
      }
    };
    const prefill = (group: SequenceGroup, seqs: readonly Sequence[]) => {
      for (const seq of seqs) {
        const left = seq.numTokens - seq.numCachedTokens;
        const n = enableChunkedPrefill ? Math.min(left, budget) : left <= budget ? left : 0;
        if (n > 0) add(group, seq, n);
      }
    };

    // 1. decodes, oldest first; preempt the newest while a sequence has no room for its token
    for (let i = 0; i < this.runningQ.length; i++) {
      const group = this.runningQ[i];
      const seqs = decoding(group, this.config.maxModelLen);
      while (!bm.canAppendSlots(seqs)) {
        const victim = this.runningQ[this.runningQ.length - 1];
        this.preempt(victim, out);
        if (victim === group) break;
      }
      if (this.runningQ[i] === group) decode(group, seqs);
    }
    // 2. prompts already started, oldest first
    for (const group of this.runningQ) prefill(group, group.liveSeqs.filter((s) => s.numTokens - s.numCachedTokens > 1));

    // 3. swapped requests back in
    while (out.preempted.length === 0 && this.swappedQ.length > 0) {
      const group = this.swappedQ[0];
      const seqs = group.liveSeqs;
      const status = bm.canSwapIn(seqs);
      if (status === 'never') {
        this.ignore(group, 'cannot-fit', this.cannotFit(group, 'swapped out, it'), out);
        continue;
      }
      const decodes = decoding(group, this.config.maxModelLen);
      if (status === 'later' || this.runningSeqs() + group.maxLiveSeqs > maxNumSeqs || decodes.length > budget) break;
      this.swappedQ.shift();
      out.blocksToSwapIn.push(...bm.swapIn(seqs));
      this.setStatus(group, 'running');
      insert(this.runningQ, group);
      decode(group, decodes);
      prefill(group, seqs.filter((s) => !decodes.includes(s) && !pendingIsLast(group, s, this.config.maxModelLen)));
    }

    // 4. new (or recomputing) requests, FCFS
    while (out.preempted.length === 0 && this.swappedQ.length === 0 && this.waitingQ.length > 0) {
      const group = this.waitingQ[0];
      const seqs = group.liveSeqs;
      // preempted while its last token was being sampled: the prefix cache needs that token's id
      if (seqs.some((s) => s.hasPending)) break;
      const id = `request ${group.requestId}`;
      if (group.numPromptTokens > this.config.maxModelLen) {
        this.ignore(group, 'prompt-too-long', `${id}: its prompt has ${group.numPromptTokens} tokens, more than the model's maximum length of ${this.config.maxModelLen}; shorten the prompt`, out);
        continue;
      }
      if (group.maxLiveSeqs > maxNumSeqs) {
        this.ignore(group, 'too-many-seqs', `${id}: n=${group.maxLiveSeqs} sequences, more than maxNumSeqs (${maxNumSeqs}) can run at once; lower n or raise maxNumSeqs`, out);
        continue;
      }
      const left = enableChunkedPrefill ? 1 : seqs.reduce((sum, s) => sum + s.numTokens - bm.numPrefixHitTokens(s), 0);
      if (left > maxNumBatchedTokens) {
        this.ignore(group, 'prompt-exceeds-budget', `${id}: ${left} tokens to compute, more than maxNumBatchedTokens (${maxNumBatchedTokens}) with chunked prefill off; enable chunked prefill or raise maxNumBatchedTokens`, out);
        continue;
      }
      const status: AllocStatus = bm.canAllocate(seqs);
      if (status === 'never') {
        this.ignore(group, 'cannot-fit', this.cannotFit(group, 'it'), out);
        continue;
      }
      if (status === 'later' || this.runningSeqs() + group.maxLiveSeqs > maxNumSeqs || budget < left) break;
      this.waitingQ.shift();
      for (const s of seqs) bm.allocate(s);
      this.setStatus(group, 'running');
      insert(this.runningQ, group);
      prefill(group, seqs);
    }

    if (out.scheduled.length > 0) this.pending = out;
    return out;
  }

  /** The model ran `out`: the scheduled tokens are now in the cache (and full blocks in the prefix cache). */
  update(out: SchedulerOutput): void {
    if (out.scheduled.length === 0) return;
    if (out !== this.pending) throw new Error('update() of an output that is not the last schedule()');
    this.pending = null;
    for (const e of out.scheduled) {
      if (e.seq.status !== 'running') continue; // finished or aborted meanwhile
      if (e.seq.numCachedTokens !== e.numCachedTokens) throw new Error(`sequence ${e.seq.seqId} changed between schedule() and update()`);
      this.blockManager.markComputed(e.seq, e.numNewTokens);
    }
  }

  private runningSeqs(): number {
    let n = 0;
    for (const g of this.runningQ) n += g.maxLiveSeqs;
    return n;
  }

  private preempt(group: SequenceGroup, out: SchedulerOutput): void {
    const bm = this.blockManager;
    const seqs = group.liveSeqs;
    remove(this.runningQ, group);
    if ((this.config.preemptionMode === 'swap' || seqs.length > 1) && bm.canSwapOut(seqs)) {
      out.blocksToSwapOut.push(...bm.swapOut(seqs));
      this.setStatus(group, 'swapped');
      insert(this.swappedQ, group);
    } else {
      for (const s of seqs) bm.free(s);
      this.setStatus(group, 'waiting');
      insert(this.waitingQ, group);
    }
    out.preempted.push(group);
    this.numPreemptions++;
  }

  private cannotFit(group: SequenceGroup, what: string): string {
    const bm = this.blockManager;
    const tokens = group.liveSeqs.reduce((sum, s) => sum + s.numTokens, 0);
    return (
      `request ${group.requestId}: ${what} needs KV blocks for ${tokens} tokens (${bm.blockSize} per block), ` +
      `more than the cache can ever give (${bm.numBlocks} blocks, ${bm.watermarkBlocks} kept free); give the KV cache more memory or shorten the request`
    );
  }

  private ignore(group: SequenceGroup, code: IgnoreCode, reason: string, out: SchedulerOutput): void {
    this.end(group, 'ignored');
    out.ignored.push({ group, code, reason });
  }

  private end(group: SequenceGroup, reason: FinishReason): void {
    for (const s of group.liveSeqs) this.endSeq(s, reason);
    remove(this.waitingQ, group) || remove(this.runningQ, group) || remove(this.swappedQ, group);
    this.groups.delete(group.requestId);
    for (const s of group.seqs) this.groupOf.delete(s);
  }

  private endSeq(seq: Sequence, reason: FinishReason): void {
    if (seq.isFinished) return;
    this.blockManager.free(seq);
    seq.status = 'finished';
    seq.finishReason = reason;
  }

  private setStatus(group: SequenceGroup, status: 'waiting' | 'running' | 'swapped'): void {
    for (const s of group.liveSeqs) {
      s.status = status;
      if (status === 'waiting') s.numCachedTokens = 0;
    }
  }
}

/**
 * The live sequences of a running group with exactly one token to compute (the last sampled
 * one), less those whose pending token is their last (they finish when it is resolved).
 */
function decoding(group: SequenceGroup, maxModelLen: number): Sequence[] {
  const seqs = group.liveSeqs;
  for (const s of seqs) {
    if (s.numTokens === s.numCachedTokens) throw new Error(`sequence ${s.seqId} has nothing to compute: append its sampled token or finish it before schedule()`);
    if (s.numTokens > maxModelLen && !pendingIsLast(group, s, maxModelLen)) throw new Error(`sequence ${s.seqId} has ${s.numTokens} tokens, past maxModelLen (${maxModelLen}): finish it with reason 'length'`);
  }
  return seqs.filter((s) => s.numTokens - s.numCachedTokens === 1 && !pendingIsLast(group, s, maxModelLen));
}

/** The sequence's pending token is its last (max_tokens or the model's length): it finishes when the token is known. */
function pendingIsLast(group: SequenceGroup, s: Sequence, maxModelLen: number): boolean {
  return s.hasPending && (s.numOutputTokens >= group.params.maxTokens || s.numTokens >= maxModelLen);
}

/** Inserts by arrival order (after equals). */
function insert(queue: SequenceGroup[], group: SequenceGroup): void {
  let i = queue.length;
  while (i > 0 && queue[i - 1].arrival > group.arrival) i--;
  queue.splice(i, 0, group);
}

function remove(queue: SequenceGroup[], group: SequenceGroup): boolean {
  const i = queue.indexOf(group);
  if (i < 0) return false;
  queue.splice(i, 1);
  return true;
}

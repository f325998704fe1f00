// A request is a SequenceGroup of n Sequences. Each Sequence carries its tokens (prompt, then
// output) and its place in the paged KV cache: `blockTable` (block ids, block i holding tokens
// [i*blockSize, (i+1)*blockSize)) and `numCachedTokens` (the leading tokens whose K/V are in
// those blocks: prefix-cache hits plus what the model has computed so far).
//
// With n > 1 the group starts as one sequence: the prompt is computed once, then
// Scheduler.fork() makes the n-1 siblings, which share the prompt's blocks.

export type SequenceStatus = 'waiting' | 'running' | 'swapped' | 'finished';

/** stop: EOS, a stop id or string; length: maxTokens or maxModelLen; ignored: rejected by the scheduler. */
export type FinishReason = 'stop' | 'length' | 'abort' | 'ignored';

/** What the scheduler needs of a request's sampling parameters (engine/sampling-params.ts has the rest). */
export interface RequestParams {
  /** Output sequences for this request. */
  n: number;
  maxTokens: number;
  ignoreEos?: boolean;
}

let nextSeqId = 0;
let nextArrival = 0;

export class Sequence {
  readonly seqId = nextSeqId++;
  readonly tokenIds: number[];
  readonly numPromptTokens: number;
  status: SequenceStatus = 'waiting';
  finishReason: FinishReason | null = null;
  /** Device block ids while waiting/running; host block ids while swapped. */
  blockTable: number[] = [];
  /** Leading tokens whose K/V are in the cache. The model computes tokens [numCachedTokens, numTokens). */
  numCachedTokens = 0;
  /** Compute every prompt token (no prefix-cache hits): prompt log-probs need each position's logits. */
  noPrefixCache = false;
  /**
   * The last token is a placeholder (see appendPending): the step that samples it is still on the
   * device. At most one at a time: the engine resolves it before it appends the next.
   */
  hasPending = false;

  constructor(tokenIds: readonly number[], numPromptTokens = tokenIds.length) {
    this.tokenIds = tokenIds.slice();
    this.numPromptTokens = numPromptTokens;
  }

  get numTokens(): number {
    return this.tokenIds.length;
  }
  get numOutputTokens(): number {
    return this.tokenIds.length - this.numPromptTokens;
  }
  get outputTokenIds(): number[] {
    return this.tokenIds.slice(this.numPromptTokens);
  }
  get promptTokenIds(): number[] {
    return this.tokenIds.slice(0, this.numPromptTokens);
  }
  get lastTokenId(): number {
    return this.tokenIds[this.tokenIds.length - 1];
  }
  get isFinished(): boolean {
    return this.status === 'finished';
  }

  /** A sampled token; its K/V are computed in the next step. */
  appendToken(tokenId: number): void {
    if (this.isFinished) throw new Error(`sequence ${this.seqId} is finished`);
    if (this.hasPending) throw new Error(`sequence ${this.seqId} has a pending token: resolve it first`);
    this.tokenIds.push(tokenId);
  }

  /**
   * A token still being sampled on the device, so that the next step can be scheduled and built
   * before it is known: `placeholder` (<= -2) names the row of the sampling step's output that
   * the device substitutes (op resolve_tokens). Nothing on the host reads its value until
   * resolvePending() puts the real id in its place.
   */
  appendPending(placeholder: number): void {
    if (this.isFinished) throw new Error(`sequence ${this.seqId} is finished`);
    if (this.hasPending) throw new Error(`sequence ${this.seqId} already has a pending token`);
    if (!(placeholder <= -2)) throw new Error(`placeholder ${placeholder} must be <= -2`);
    this.tokenIds.push(placeholder);
    this.hasPending = true;
  }

  /** The pending token's real id. */
  resolvePending(tokenId: number): void {
    if (!this.hasPending) throw new Error(`sequence ${this.seqId} has no pending token`);
    this.tokenIds[this.tokenIds.length - 1] = tokenId;
    this.hasPending = false;
  }
}

export class SequenceGroup<P extends RequestParams = RequestParams> {
  readonly seqs: Sequence[];
  /** Arrival order: FCFS ranks by it, preemption takes the largest. */
  readonly arrival: number;
  private forked = false;

  constructor(
    readonly requestId: string,
    promptTokenIds: readonly number[],
    readonly params: P,
    arrival?: number,
  ) {
    if (promptTokenIds.length === 0) throw new Error(`request ${requestId}: empty prompt (a prompt needs at least one token, e.g. BOS)`);
    if (!Number.isInteger(params.n) || params.n < 1) throw new Error(`request ${requestId}: n must be a positive integer, got ${params.n}`);
    this.seqs = [new Sequence(promptTokenIds)];
    this.arrival = arrival ?? nextArrival++;
  }

  get liveSeqs(): Sequence[] {
    return this.seqs.filter((s) => !s.isFinished);
  }
  get isFinished(): boolean {
    return this.seqs.every((s) => s.isFinished);
  }
  get numPromptTokens(): number {
    return this.seqs[0].numPromptTokens;
  }
  /** n > 1 and the siblings are not made yet: the engine samples n tokens from the prompt's logits, then forks. */
  get needsFork(): boolean {
    return this.params.n > 1 && !this.forked;
  }
  /** Sequences this group may run at once: n before the fork. The scheduler's seq cap counts these. */
  get maxLiveSeqs(): number {
    return this.needsFork ? this.params.n : this.liveSeqs.length;
  }

  /**
   * Makes the n-1 siblings of the first sequence (same tokens and status, no blocks) and returns
   * them. Use Scheduler.fork(), which also shares the blocks through the block manager.
   */
  fork(): Sequence[] {
    if (!this.needsFork) throw new Error(`request ${this.requestId}: nothing to fork (n=${this.params.n}, forked=${this.forked})`);
    this.forked = true;
    const parent = this.seqs[0];
    const children: Sequence[] = [];
    for (let i = 1; i < this.params.n; i++) {
      const c = new Sequence(parent.tokenIds, parent.numPromptTokens);
      c.status = parent.status;
      children.push(c);
    }
    this.seqs.push(...children);
    return children;
  }
}

// What a request gives back, as vLLM's RequestOutput: cumulative text and token ids per output
// sequence, finish reasons, log-probs and timing; and the async stream that delivers them.

import type { FinishReason } from './stop.ts';

export interface TokenLogprob {
  id: number;
  logprob: number;
  top: { id: number; logprob: number }[];
}

export interface SeqOutput {
  index: number;
  /** Text so far (stop strings and held-back prefixes excluded). */
  text: string;
  tokenIds: number[];
  finishReason?: FinishReason;
  /** The stop string or token id that ended it. */
  stopReason?: string | number;
  logprobs?: TokenLogprob[];
}

export interface RequestOutput {
  requestId: string;
  prompt?: string;
  promptTokenIds: number[];
  /** One entry per prompt token; the first is null (nothing predicts it). */
  promptLogprobs?: ({ logprob: number; top: { id: number; logprob: number }[] } | null)[];
  outputs: SeqOutput[];
  finished: boolean;
  /** performance.now() timestamps (ms) */
  metrics: { arrivalTime: number; firstScheduledTime?: number; firstTokenTime?: number; lastTokenTime: number; finishedTime?: number };
}

/**
 * An async iterator of a request's outputs (each cumulative); `final()` resolves with the last.
 * A rejected request throws from the iterator and from final().
 */
export class RequestStream implements AsyncIterable<RequestOutput> {
  private queue: RequestOutput[] = [];
  private waiters: { resolve: (r: IteratorResult<RequestOutput>) => void; reject: (e: Error) => void }[] = [];
  private ended = false;
  private error?: Error;
  private last?: RequestOutput;
  private finalWaiters: { resolve: (r: RequestOutput) => void; reject: (e: Error) => void }[] = [];
  /** an iterator was asked for: outputs queue for it from then on */
  private iterated = false;

  constructor(readonly requestId: string) {}

  push(out: RequestOutput): void {
    this.last = out;
    const w = this.waiters.shift();
    if (w) w.resolve({ value: out, done: false });
    // with no iterator (generate() awaits only final()) nothing is queued: every output holds
    // the request's tokens so far, and a queue of one a step held O(steps^2) memory for nobody
    // (~200 MB live at 300 requests of 256 tokens; the GC's pauses stalled the host, and the
    // GPU behind it, for up to ~1 s: perf-notes, session 6)
    else if (this.iterated) this.queue.push(out);
  }

  end(): void {
    this.ended = true;
    for (const w of this.waiters.splice(0)) w.resolve({ value: undefined, done: true });
    for (const w of this.finalWaiters.splice(0)) {
      if (this.last) w.resolve(this.last);
      else w.reject(this.error ?? new Error(`request ${this.requestId} ended without output`));
    }
  }

  fail(e: Error): void {
    this.error = e;
    for (const w of this.waiters.splice(0)) w.reject(e);
    for (const w of this.finalWaiters.splice(0)) w.reject(e);
    this.ended = true;
  }

  /** The finished output. */
  final(): Promise<RequestOutput> {
    if (this.error) return Promise.reject(this.error);
    if (this.ended && this.last) return Promise.resolve(this.last);
    return new Promise((resolve, reject) => this.finalWaiters.push({ resolve, reject }));
  }

  /**
   * The outputs from now on; an iterator asked for after the request started begins with its
   * latest output, which holds everything produced before it (outputs are cumulative).
   */
  [Symbol.asyncIterator](): AsyncIterator<RequestOutput> {
    if (!this.iterated) {
      this.iterated = true;
      if (this.last) this.queue.push(this.last);
    }
    return {
      next: () => {
        const v = this.queue.shift();
        if (v) return Promise.resolve({ value: v, done: false });
        if (this.error) return Promise.reject(this.error);
        if (this.ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
      },
    };
  }
}

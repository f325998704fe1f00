// LLMEngine: the step loop and the request lifecycle. Requests come in (prompt ids, sampling
// parameters, an optional AbortSignal), the scheduler forms each step's batch, the runner runs
// it on the device, and every request's stream receives its outputs as tokens arrive.

import { STEP_GC_WEBGPU_MB, type StepGc, stepGcFromEnv } from '../util/step-gc.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { IncrementalDetokenizer } from '../tokenizer/detokenizer.ts';
import type { BlockManager } from './block-manager.ts';
import { type RequestOutput, RequestStream, type SeqOutput } from './outputs.ts';
import type { LaunchedStep, ModelRunner, SampleRow, TokenLogprobs } from './runner.ts';
import { type SamplingParams, SamplingParamsError, samplingParams } from './sampling-params.ts';
import type { Scheduler } from './scheduler.ts';
import type { ScheduledSeq, SchedulerOutput } from './scheduler-output.ts';
import { type Sequence, SequenceGroup } from './sequence.ts';
import { type StopState, flushText, pushText, stopsOnToken } from './stop.ts';
import { mulberry32 } from '../util/prng.ts';

interface Request {
  id: string;
  group: SequenceGroup;
  params: SamplingParams;
  stream: RequestStream;
  prompt?: string;
  promptLogprobs: RequestOutput['promptLogprobs'];
  arrival: number;
  firstScheduledTime?: number;
  firstTokenTime?: number;
  onAbort?: () => void;
  signal?: AbortSignal;
}

interface SeqState {
  /** absent without a tokenizer (benchmarks on dummy weights): no text, ids only */
  detok?: IncrementalDetokenizer;
  stop: StopState;
  rand: () => number;
  logprobs: SeqOutput['logprobs'];
  index: number;
}

export interface EngineStats {
  steps: number;
  /** steps launched while the one before was still on the device */
  overlappedSteps: number;
  /** sum of GPU time over steps (ms), when the runner times steps */
  gpuMs: number;
  /**
   * the device's idle time between consecutive timed steps (ms, from the steps' device
   * timestamps, where the backend has them), with what the host did between their launches
   */
  gpuGaps?: GpuGap[];
  /** wall time from the first step's start to the last step's end (ms) */
  wallMs: number;
  /** host time spent waiting for steps' results (ms); the rest of wallMs the host was busy */
  waitMs: number;
  preemptions: number;
  promptTokens: number;
  generatedTokens: number;
  maxUsedBlocks: number;
  /** allocated token slots not holding a token, at the step with the most blocks in use */
  wasteAtPeak: number;
}

/** The device's idle time before a timed step, with what the host did around it. */
export interface GpuGap {
  /** from the end of the step before on the device to this step's start (ms) */
  ms: number;
  /**
   * launched while the step before was in flight (the host had not taken its tokens yet). The
   * device may still have finished that step before this launch: sinceLaunchMs tells.
   */
  queued: boolean;
  /** this step's index in the run, and the tokens it computed */
  step: number;
  tokens: number;
  /** host time from the step before's launch to this one's (ms), and this launch's own */
  sinceLaunchMs: number;
  launchMs: number;
  /**
   * parts of sinceLaunchMs (ms): taking the tokens of the step before that, the scheduler's
   * update, then this step's scheduling, block copies and sampling setup; and this step's
   * preemptions. What they leave of sinceLaunchMs is the event loop's (timers, I/O, the GC).
   */
  completeMs: number;
  updateMs: number;
  scheduleMs: number;
  copyMs: number;
  prepareMs: number;
  preempted: number;
}

/** A launched step whose tokens the host has not taken yet. */
interface StepInFlight {
  out: SchedulerOutput;
  /** sampled entries in row order, with the state of each sequence sampled from the entry's row */
  pending: { e: ScheduledSeq; states: SeqState[] }[];
  launched: LaunchedStep;
  /** its sampled sequences hold pending tokens (Sequence.appendPending) that `complete` resolves */
  overlapped: boolean;
  /** launched while the step before it was still in flight (queued behind it on the device) */
  queuedBehind: boolean;
  /** host clock at the start and the end of its launch (ms), and the tokens it computes */
  launchAt: number;
  launchedAt: number;
  tokens: number;
  /** the host's time in this step's scheduling, block copies and sampling setup (ms), and its preemptions */
  host: Pick<GpuGap, 'completeMs' | 'updateMs' | 'scheduleMs' | 'copyMs' | 'prepareMs' | 'preempted'>;
}

export interface EngineOptions {
  /**
   * Build and launch step N+1 while step N runs on the device (default true): the next step's
   * token ids that are still being sampled are filled in on the device (op resolve_tokens), and
   * the host takes step N's tokens while N+1 runs. A sequence that stops at step N has had one
   * token computed in vain by N+1, which is dropped. Off: every step waits for the one before.
   */
  overlapSteps?: boolean;
}

export class LLMEngine {
  private requests = new Map<string, Request>();
  private inflight?: StepInFlight;
  readonly overlapSteps: boolean;
  /** collections at step boundaries (src/util/step-gc.ts; on for WebGPU), with their count and time */
  readonly stepGc?: StepGc;
  private seqState = new Map<Sequence, SeqState>();
  private nextId = 0;
  private loop?: Promise<void>;
  private firstStepAt?: number;
  /** the device timestamp at the end of the last timed step (ns), and its launch on the host (ms) */
  private lastSpanEnd?: bigint;
  private lastLaunchAt = 0;
  /** the host's time after the last launch: taking the step before's tokens, and the scheduler's update (ms) */
  private afterLaunch = { completeMs: 0, updateMs: 0 };
  readonly stats: EngineStats = { steps: 0, overlappedSteps: 0, gpuMs: 0, wallMs: 0, waitMs: 0, preemptions: 0, promptTokens: 0, generatedTokens: 0, maxUsedBlocks: 0, wasteAtPeak: 0 };

  constructor(
    readonly tokenizer: Tokenizer | undefined,
    readonly eosTokenIds: readonly number[],
    readonly scheduler: Scheduler,
    readonly blocks: BlockManager,
    readonly runner: ModelRunner,
    readonly maxModelLen: number,
    options: EngineOptions = {},
  ) {
    this.overlapSteps = options.overlapSteps ?? true;
    this.stepGc = stepGcFromEnv(process.env.PARALLM_STEP_GC_MB ?? (runner.device.info.backend === 'webgpu' ? String(STEP_GC_WEBGPU_MB) : undefined));
  }

  /** Queues a request; its stream yields outputs as they arrive. An AbortSignal frees its blocks at once. */
  addRequest(prompt: string | number[], params: Partial<SamplingParams> = {}, opts: { requestId?: string; signal?: AbortSignal } = {}): RequestStream {
    const p = samplingParams(params);
    if (typeof prompt === 'string' && !this.tokenizer) throw new Error('this engine has no tokenizer: pass prompt token ids');
    const ids = typeof prompt === 'string' ? this.tokenizer!.encode(prompt) : prompt;
    const vocab = this.runner.model.config.vocabSize;
    if (ids.length === 0) throw new SamplingParamsError('prompt', 'is empty: a prompt needs at least one token');
    const bad = ids.find((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
    if (bad !== undefined) throw new SamplingParamsError('prompt', `token id ${bad} is outside the vocabulary [0, ${vocab})`);
    const id = opts.requestId ?? `req-${this.nextId++}`;
    if (this.requests.has(id)) throw new Error(`request id ${id} is already in use`);
    const group = new SequenceGroup(id, ids, p);
    if (p.promptLogprobs !== undefined) group.seqs[0].noPrefixCache = true;
    const stream = new RequestStream(id);
    const req: Request = { id, group, params: p, stream, prompt: typeof prompt === 'string' ? prompt : undefined, promptLogprobs: undefined, arrival: performance.now(), signal: opts.signal };
    if (p.promptLogprobs !== undefined) req.promptLogprobs = [null];
    this.requests.set(id, req);
    this.stats.promptTokens += ids.length;
    this.scheduler.addRequest(group);
    if (opts.signal) {
      if (opts.signal.aborted) queueMicrotask(() => this.abort(id));
      else {
        req.onAbort = () => this.abort(id);
        opts.signal.addEventListener('abort', req.onAbort, { once: true });
      }
    }
    this.kick();
    return stream;
  }

  /** Cancels a request: frees its blocks now and ends its stream with finish reason 'abort'. */
  abort(requestId: string): void {
    const req = this.requests.get(requestId);
    if (!req) return;
    this.scheduler.abort(requestId);
    for (const seq of req.group.seqs) if (!seq.finishReason) seq.finishReason = 'abort';
    this.emit(req, true);
  }

  private scheduledListeners: ((requestId: string, time: number) => void)[] = [];

  /** Calls `f` when a request is scheduled for the first time (its queue time ends), with performance.now(). */
  onFirstScheduled(f: (requestId: string, time: number) => void): void {
    this.scheduledListeners.push(f);
  }

  hasUnfinished(): boolean {
    return this.requests.size > 0;
  }

  /** Runs steps until no request is left; resolves when idle. Called again as requests arrive. */
  private kick(): void {
    // a running loop picks new requests up at its next step
    if (this.loop) return;
    this.loop = (async () => {
      try {
        while (this.requests.size || this.inflight) await this.step();
      } catch (e) {
        this.inflight?.launched.result.catch(() => {}); // failed with the rest, reported once
        this.inflight = undefined;
        // a device or engine failure fails every request in flight rather than hanging them,
        // and gives their blocks back
        for (const r of this.requests.values()) {
          this.scheduler.abort(r.id);
          r.stream.fail(e as Error);
        }
        this.requests.clear();
      } finally {
        this.loop = undefined;
        // a request that arrived while the loop was finishing
        if (this.requests.size) this.kick();
      }
    })();
  }

  /** Waits until every request queued so far has finished. */
  async drain(): Promise<void> {
    while (this.loop) await this.loop;
  }

  /**
   * One iteration: schedule, copy blocks, launch the model and the sampling, then take the
   * tokens of the step before (overlap on) or of this one (overlap off, or a step that forks).
   */
  async step(): Promise<void> {
    await new Promise<void>((r) => setImmediate(r)); // let I/O in between steps (HTTP clients, aborts): the CPU backend never awaits a macrotask
    const t0 = performance.now();
    this.firstStepAt ??= t0;
    const out = this.scheduler.schedule();
    const tScheduled = performance.now();
    this.stats.preemptions += out.preempted.length;
    for (const e of out.scheduled) {
      const req = this.requests.get(e.group.requestId);
      if (req && req.firstScheduledTime === undefined) {
        req.firstScheduledTime = t0;
        for (const f of this.scheduledListeners) f(req.id, t0);
      }
    }
    for (const ig of out.ignored) {
      const req = this.requests.get(ig.group.requestId);
      if (req) this.finishWithError(req, `${ig.code}: ${ig.reason}`);
    }
    if (!out.scheduled.length) {
      if (this.inflight) {
        // nothing to launch before its tokens are known
        const prev = this.inflight;
        this.inflight = undefined;
        await this.complete(prev);
      } else if (this.requests.size && !out.ignored.length && !out.preempted.length) {
        // nothing runnable and nothing changed: yield so aborts and new requests can arrive
        await new Promise<void>((r) => setTimeout(r, 1));
      }
      return;
    }
    await this.runner.copyBlocks(out.blocksToSwapOut, out.blocksToSwapIn, out.blocksToCopy);
    const tCopied = performance.now();
    const u = this.blocks.usage();
    if (u.usedBlocks > this.stats.maxUsedBlocks) {
      this.stats.maxUsedBlocks = u.usedBlocks;
      this.stats.wasteAtPeak = u.wasteFraction;
    }

    // rows to sample: one per sequence, n from one row for a group whose prompt completes (its
    // siblings are forked after update(), and get the states made here)
    const samples: SampleRow[] = [];
    const pending: StepInFlight['pending'] = [];
    const promptLp = new Map<ScheduledSeq, number>();
    for (const e of out.scheduled) {
      const req = this.requests.get(e.group.requestId)!;
      if (req.params.promptLogprobs !== undefined && e.numCachedTokens < e.seq.numPromptTokens - 1) promptLp.set(e, req.params.promptLogprobs);
      if (!e.sample) continue;
      const n = e.group.needsFork ? req.params.n : 1;
      const states = Array.from({ length: n }, (_, i) => (i === 0 ? this.state(req, e.seq) : this.newState(req, i)));
      for (const st of states) samples.push(this.sampleRow(req, e, st));
      pending.push({ e, states });
    }
    const prev = this.inflight;
    const launchAt = performance.now();
    const launched = this.runner.launch(out.scheduled, samples, promptLp, prev?.launched.sampled);
    const launchedAt = performance.now();
    this.inflight = undefined;
    if (prev) {
      // two steps queued on the device: a full collection now costs the GPU nothing (step-gc.ts)
      this.stepGc?.maybeCollect();
      this.stats.overlappedSteps++;
      try {
        await this.complete(prev);
      } catch (e) {
        launched.result.catch(() => {}); // the failure is reported once, by the loop
        throw e;
      }
    }
    const tCompleted = performance.now();
    this.scheduler.update(out);
    this.afterLaunch = { completeMs: tCompleted - launchedAt, updateMs: performance.now() - tCompleted };
    // a fork needs its parent's token on the host: such a step is taken before the next
    const overlapped = this.overlapSteps && pending.every((p) => p.states.length === 1);
    const tokens = out.scheduled.reduce((a, e) => a + e.numNewTokens, 0);
    const host = { ...this.afterLaunch, scheduleMs: tScheduled - t0, copyMs: tCopied - tScheduled, prepareMs: launchAt - tCopied, preempted: out.preempted.length };
    const cur: StepInFlight = { out, pending, launched, overlapped, queuedBehind: prev !== undefined, launchAt, launchedAt, tokens, host };
    if (!overlapped) return this.complete(cur);
    pending.forEach(({ e }, row) => {
      // not for a sequence the step before finished
      if (this.requests.has(e.group.requestId) && e.seq.status === 'running') e.seq.appendPending(-2 - row);
    });
    this.inflight = cur;
  }

  /** Takes a launched step's tokens: forks, appends or resolves them, stops, and emits. */
  private async complete(step: StepInFlight): Promise<void> {
    const tWait = performance.now();
    const result = await step.launched.result;
    this.stats.waitMs += performance.now() - tWait;
    const touched = new Set<Request>();
    for (const [e, lps] of result.promptLogprobs ?? []) {
      const req = this.requests.get(e.group.requestId);
      req?.promptLogprobs!.push(...lps.map((x) => ({ logprob: x.logprob, top: x.top })));
    }
    let row = 0;
    for (const { e, states } of step.pending) {
      const req = this.requests.get(e.group.requestId);
      const seqs = states.length > 1 && req && !e.seq.isFinished ? this.scheduler.fork(e.group) : [e.seq];
      seqs.forEach((seq, i) => this.seqState.set(seq, states[i]));
      const first = row;
      row += states.length; // the entry's rows, sampled for its n sequences (or one)
      for (const [j, seq] of seqs.entries()) {
        const i = first + j;
        if (!req || seq.isFinished) continue;
        // overlapped: only sequences that got a pending token (a preempted one too: its token is good)
        if (step.overlapped ? !seq.hasPending : seq.status !== 'running') continue;
        this.appendToken(req, seq, result.ids[i], result.logprobs?.[i], step.overlapped);
        touched.add(req);
      }
    }
    for (const req of touched) this.emit(req, req.group.isFinished);
    this.stats.steps++;
    this.stats.gpuMs += result.gpuMs ?? 0;
    if (result.gpuSpanNs) {
      const [b, e] = result.gpuSpanNs;
      if (this.lastSpanEnd !== undefined) {
        (this.stats.gpuGaps ??= []).push({
          ms: Number(b - this.lastSpanEnd) / 1e6,
          queued: step.queuedBehind,
          step: this.stats.steps,
          tokens: step.tokens,
          sinceLaunchMs: step.launchAt - this.lastLaunchAt,
          launchMs: step.launchedAt - step.launchAt,
          ...step.host,
        });
      }
      this.lastSpanEnd = e;
      this.lastLaunchAt = step.launchAt;
    }
    this.stats.wallMs = performance.now() - (this.firstStepAt ?? 0);
  }

  private sampleRow(req: Request, e: ScheduledSeq, st: SeqState): SampleRow {
    const p = req.params;
    // min_tokens: EOS and stop ids are held back on the device until enough tokens are out
    const banned = e.seq.numOutputTokens < p.minTokens ? [...p.stopTokenIds, ...(p.ignoreEos ? [] : this.eosTokenIds)] : [];
    return { entry: e, seq: e.seq, params: p, draw: st.rand(), banned };
  }

  private state(req: Request, seq: Sequence): SeqState {
    let st = this.seqState.get(seq);
    if (!st) {
      st = this.newState(req, req.group.seqs.indexOf(seq));
      this.seqState.set(seq, st);
    }
    return st;
  }

  /** A sequence's detokenizer, stop state and draws: seeded by (seed, index), so a seed reproduces whatever the batch. */
  private newState(req: Request, index: number): SeqState {
    const seed = req.params.seed !== undefined ? req.params.seed * 131 + index : Math.floor(Math.random() * 2 ** 31);
    const prompt = req.group.seqs[0].promptTokenIds;
    return {
      detok: this.tokenizer ? new IncrementalDetokenizer(this.tokenizer, prompt, { skipSpecialTokens: req.params.skipSpecialTokens }) : undefined,
      stop: { text: '', pending: '' },
      rand: mulberry32(seed),
      logprobs: req.params.logprobs !== undefined ? [] : undefined,
      index,
    };
  }

  /** A sampled token: appended, or put in place of the sequence's pending token. */
  private appendToken(req: Request, seq: Sequence, id: number, lp: TokenLogprobs | undefined, pending: boolean): void {
    const st = this.state(req, seq);
    req.firstTokenTime ??= performance.now();
    const p = req.params;
    const stopId = stopsOnToken(id, p, this.eosTokenIds, seq.numOutputTokens - (pending ? 1 : 0));
    if (pending) seq.resolvePending(id);
    else seq.appendToken(id);
    this.stats.generatedTokens++;
    if (lp && st.logprobs) st.logprobs.push({ id, logprob: lp.logprob, top: lp.top });
    if (stopId) {
      // EOS or a stop id: its text is not part of the output; held-back text is released
      st.stop.finished = 'stop';
      st.stop.stopReason = id;
      pushText(st.stop, st.detok?.flush() ?? '', []);
      flushText(st.stop);
    } else {
      pushText(st.stop, st.detok?.push(id) ?? '', p.stop);
      if (!st.stop.finished && (seq.numOutputTokens >= p.maxTokens || seq.numTokens >= this.maxModelLen)) {
        st.stop.finished = 'length';
        pushText(st.stop, st.detok?.flush() ?? '', p.stop);
        if (st.stop.finished === 'length') flushText(st.stop);
      }
    }
    if (st.stop.finished) this.scheduler.finish(seq, st.stop.finished);
  }

  private outputsOf(req: Request): SeqOutput[] {
    return req.group.seqs.map((seq, i) => {
      const st = this.seqState.get(seq);
      return {
        index: i,
        text: st?.stop.text ?? '',
        tokenIds: seq.outputTokenIds,
        finishReason: seq.finishReason === 'ignored' ? 'abort' : (seq.finishReason ?? undefined),
        stopReason: st?.stop.stopReason,
        logprobs: st?.logprobs,
      };
    });
  }

  private emit(req: Request, finished: boolean): void {
    const now = performance.now();
    req.stream.push({
      requestId: req.id,
      prompt: req.prompt,
      promptTokenIds: req.group.seqs[0].promptTokenIds,
      promptLogprobs: req.promptLogprobs,
      outputs: this.outputsOf(req),
      finished,
      metrics: { arrivalTime: req.arrival, firstScheduledTime: req.firstScheduledTime, firstTokenTime: req.firstTokenTime, lastTokenTime: now, finishedTime: finished ? now : undefined },
    });
    if (finished) this.retire(req);
  }

  private finishWithError(req: Request, reason: string): void {
    req.stream.fail(new RequestRejectedError(req.id, reason));
    this.retire(req);
  }

  private retire(req: Request): void {
    req.stream.end();
    if (req.onAbort) req.signal?.removeEventListener('abort', req.onAbort);
    for (const s of req.group.seqs) this.seqState.delete(s);
    this.requests.delete(req.id);
  }
}

/** The scheduler refused a request (too long for the model, or more KV blocks than exist). */
export class RequestRejectedError extends Error {
  override name = 'RequestRejectedError';
  constructor(
    readonly requestId: string,
    reason: string,
  ) {
    super(`request ${requestId} rejected: ${reason}`);
  }
}

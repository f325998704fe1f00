// ModelRunner: turns a scheduler step into device work. It copies KV blocks (swap out, swap in,
// copy-on-write), builds the step's inputs (token ids, positions, slot mapping, block tables),
// records the forward pass, the penalties, the sampling and the log-probs into one stream, and
// reads back only token ids and the log-probs that were asked for.

import type { CommandStream, Device, Tensor } from '../device/device.ts';
import type { KvCache } from '../model/kv-cache.ts';
import type { LlamaModel, StepInput } from '../model/llama.ts';
import { Workspace } from '../model/workspace.ts';
import type { BlockPair } from './block-manager.ts';
import { type SamplingParams, needsPenalties } from './sampling-params.ts';
import type { ScheduledSeq } from './scheduler-output.ts';
import type { Sequence } from './sequence.ts';

/** One token to sample: from the logits of `entry`'s last token, for `seq` (a fork may share the entry). */
export interface SampleRow {
  entry: ScheduledSeq;
  seq: Sequence;
  params: SamplingParams;
  /** uniform draw in [0, 1) for this token */
  draw: number;
  /** EOS / stop ids to hold back (min_tokens not reached yet) */
  banned: number[];
}

export interface TokenLogprobs {
  /** log-probability of the chosen token under the model's raw distribution */
  logprob: number;
  /** the top alternatives, most likely first */
  top: { id: number; logprob: number }[];
}

export interface StepResult {
  ids: Int32Array;
  logprobs?: (TokenLogprobs | undefined)[];
  /** prompt log-probs per scheduled entry that asked for them: one per computed prompt token after the first */
  promptLogprobs?: Map<ScheduledSeq, TokenLogprobs[]>;
  /** GPU time of the step (ms), when timing is on */
  gpuMs?: number;
  /** the step's start and end on the device's clock (ns), where the backend reports them */
  gpuSpanNs?: [bigint, bigint];
}

/** A step on the device: its sampled ids stay there for the next launch; `result` comes when it is done. */
export interface LaunchedStep {
  sampled?: Tensor;
  result: Promise<StepResult>;
}

export class ModelRunner {
  private ws: Workspace;
  private launches = 0;
  /** block copies submitted since the last launch: its result waits for them */
  private copies: Promise<void>[] = [];
  /** host copies of swapped-out blocks: host block -> per layer [K bytes, V bytes] */
  private host = new Map<number, [Uint8Array, Uint8Array][]>();

  constructor(
    readonly device: Device,
    readonly model: LlamaModel,
    readonly cache: KvCache,
    private timing = false,
  ) {
    this.ws = new Workspace(device, model.config);
  }

  /** Swap-outs first (the step may reuse those device blocks), then swap-ins, then copy-on-write. */
  async copyBlocks(swapOut: BlockPair[], swapIn: BlockPair[], copies: BlockPair[]): Promise<void> {
    const L = this.cache.keys.length;
    if (swapOut.length) {
      const s = this.device.stream();
      const pending: Promise<void>[] = [];
      for (const [dev, hostBlock] of swapOut) {
        const layers: [Uint8Array, Uint8Array][] = [];
        this.host.set(hostBlock, layers);
        for (let l = 0; l < L; l++) {
          const [k, v] = this.cache.block(l, dev);
          pending.push(Promise.all([s.read(k), s.read(v)]).then(([kb, vb]) => void (layers[l] = [kb, vb])));
        }
      }
      s.submit();
      await Promise.all(pending);
    }
    if (!swapIn.length && !copies.length) return;
    const s = this.device.stream();
    for (const [hostBlock, dev] of swapIn) {
      const layers = this.host.get(hostBlock);
      if (!layers) throw new Error(`swap in: host block ${hostBlock} holds nothing`);
      this.host.delete(hostBlock);
      layers.forEach(([kb, vb], l) => {
        const [k, v] = this.cache.block(l, dev);
        s.write(k, kb).write(v, vb);
      });
    }
    if (copies.length) {
      const pairs = this.ws.upload(s, 'cow_pairs', [copies.length, 2], copies.flat());
      for (let l = 0; l < L; l++) s.op('copy_blocks', { keyCache: this.cache.keys[l], valueCache: this.cache.values[l], pairs });
    }
    // the device runs these before the step launched next (one queue); waiting here would also
    // wait for a step still running. The next step's result reports a failure.
    const done = s.submit().done();
    done.catch(() => {});
    this.copies.push(done);
  }

  /** The step's model inputs: each scheduled sequence's tokens [numCachedTokens, + numNewTokens). */
  stepInput(scheduled: ScheduledSeq[]): StepInput {
    const B = this.cache.blockSize;
    const tokenIds: number[] = [];
    const positions: number[] = [];
    const slotMapping: number[] = [];
    const seqs: StepInput['seqs'] = [];
    for (const e of scheduled) {
      const end = e.numCachedTokens + e.numNewTokens;
      const table = e.seq.blockTable;
      for (let p = e.numCachedTokens; p < end; p++) {
        tokenIds.push(e.seq.tokenIds[p]);
        positions.push(p);
        slotMapping.push(table[Math.floor(p / B)] * B + (p % B));
      }
      seqs.push({ queryLen: e.numNewTokens, contextLen: end, blockTable: table.slice(0, Math.ceil(end / B)) });
    }
    return { tokenIds, positions, slotMapping, seqs };
  }

  /**
   * Runs the step and samples `samples` (rows of entries that reach their last token). Entries
   * in `promptLogprobEntries` also get the log-prob of each of their prompt tokens.
   */
  run(scheduled: ScheduledSeq[], samples: SampleRow[], promptLogprobEntries: Map<ScheduledSeq, number> = new Map()): Promise<StepResult> {
    return this.launch(scheduled, samples, promptLogprobEntries).result;
  }

  /**
   * Records and submits the step, and returns at once: `result` resolves when the device is
   * done. `sampledBefore` is the `sampled` tensor of the previous launch: token ids of this step
   * that are still placeholders on the host (-2 - row, Sequence.appendPending) are taken from it
   * on the device, so that this step can be launched while that one runs.
   */
  launch(scheduled: ScheduledSeq[], samples: SampleRow[], promptLogprobEntries: Map<ScheduledSeq, number> = new Map(), sampledBefore?: Tensor): LaunchedStep {
    const ws = this.ws;
    const V = this.model.config.vocabSize;
    const step: StepInput = { ...this.stepInput(scheduled), sampledBefore };
    // two buffers of sampled ids, one per launch in turn: the next launch reads this one's
    this.launches++;
    const sampledName = `sampled.${this.launches % 2}`;
    // logits rows: every entry's last token, then the prompt positions whose log-probs are wanted
    const starts: number[] = [];
    let t = 0;
    for (const e of scheduled) {
      starts.push(t);
      t += e.numNewTokens;
    }
    const rowOf = new Map<ScheduledSeq, number>();
    const logitRows: number[] = [];
    scheduled.forEach((e, i) => {
      rowOf.set(e, logitRows.length);
      logitRows.push(starts[i] + e.numNewTokens - 1);
    });
    const promptRows = new Map<ScheduledSeq, { first: number; count: number; targets: number[] }>();
    for (const [e] of promptLogprobEntries) {
      const i = scheduled.indexOf(e);
      // position p predicts token p + 1: every computed prompt position whose next token is a prompt token
      const lastPromptPos = e.seq.numPromptTokens - 2;
      const from = e.numCachedTokens;
      const to = Math.min(e.numCachedTokens + e.numNewTokens - 1, lastPromptPos);
      if (to < from) continue;
      const first = logitRows.length;
      const targets: number[] = [];
      for (let p = from; p <= to; p++) {
        logitRows.push(starts[i] + (p - e.numCachedTokens));
        targets.push(e.seq.tokenIds[p + 1]);
      }
      promptRows.set(e, { first, count: to - from + 1, targets });
    }

    const s = this.device.stream({ timing: this.timing, label: 'step' });
    const logits = this.model.record(s, step, this.cache, logitRows);
    const R = samples.length;
    const reads: Promise<Uint8Array>[] = [];
    let ids: Tensor | undefined;
    let lp: { logprob: Tensor; topIds?: Tensor; top?: Tensor; n: number } | undefined;
    if (R) {
      // one logits row per sample (a fork samples its siblings from one row)
      const pick = ws.upload(s, 'sample_rows', [R], samples.map((r) => rowOf.get(r.entry)!));
      const x = ws.get('sample_logits', [R, V], 'f32');
      s.op('embedding', { ids: pick, table: logits, out: x });
      const topN = Math.max(-1, ...samples.map((r) => r.params.logprobs ?? -1));
      let raw: Tensor | undefined;
      if (topN >= 0) {
        // log-probs are those of the raw distribution: keep the row before penalties
        raw = ws.get('raw_logits', [R, V], 'f32');
        s.copy(x, raw);
      }
      this.recordPenalties(s, x, samples, sampledBefore);
      ids = ws.get(sampledName, [R], 'i32');
      const p = ws.hostInputs(s, 'sampling', R, {
        temperature: ['f32', samples.map((r) => r.params.temperature)],
        topK: ['i32', samples.map((r) => r.params.topK)],
        topP: ['f32', samples.map((r) => r.params.topP)],
        minP: ['f32', samples.map((r) => r.params.minP)],
        draws: ['f32', samples.map((r) => r.draw)],
      });
      s.op('sample', { logits: x, temperature: p.temperature, topK: p.topK, topP: p.topP, minP: p.minP, draws: p.draws, out: ids });
      reads.push(s.read(ids));
      if (raw) lp = this.recordLogprobs(s, 'lp', raw, ids, topN);
    }
    let plp: { logprob: Tensor; topIds?: Tensor; top?: Tensor; n: number } | undefined;
    if (promptRows.size) {
      const all = [...promptRows.values()];
      const count = all.reduce((a, r) => a + r.count, 0);
      const topN = Math.max(0, ...[...promptLogprobEntries.values()]);
      const pick = ws.upload(s, 'prompt_rows', [count], all.flatMap((r) => Array.from({ length: r.count }, (_, j) => r.first + j)));
      const x = ws.get('prompt_logits', [count, V], 'f32');
      s.op('embedding', { ids: pick, table: logits, out: x });
      const targets = ws.upload(s, 'prompt_targets', [count], all.flatMap((r) => r.targets));
      plp = this.recordLogprobs(s, 'plp', x, targets, topN);
    }
    const lpReads = lp ? this.readLogprobs(s, lp) : undefined;
    const plpReads = plp ? this.readLogprobs(s, plp) : undefined;
    const done = s.submit();
    const copies = this.copies;
    this.copies = [];
    const result = (async (): Promise<StepResult> => {
      // a kernel that failed on the device fails the step here, not silently
      await Promise.all(copies);
      await done.done();
      const out: StepResult = { ids: new Int32Array(0) };
      if (R) {
        const b = await reads[0];
        out.ids = new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + 4 * R));
      }
      if (lpReads) {
        const all = await lpReads;
        out.logprobs = samples.map((r, i) => (r.params.logprobs === undefined ? undefined : slice(all[i], r.params.logprobs)));
      }
      if (plpReads) {
        const all = await plpReads;
        out.promptLogprobs = new Map();
        let k = 0;
        for (const [e, rr] of promptRows) {
          out.promptLogprobs.set(e, all.slice(k, k + rr.count).map((x) => slice(x, promptLogprobEntries.get(e)!)));
          k += rr.count;
        }
      }
      if (this.timing) {
        out.gpuMs = await done.elapsedMs();
        out.gpuSpanNs = await done.gpuSpanNs?.();
      }
      return out;
    })();
    return { sampled: ids, result };
  }

  private recordPenalties(s: CommandStream, x: Tensor, samples: SampleRow[], sampledBefore?: Tensor): void {
    const R = samples.length;
    const need = samples.map((r) => needsPenalties(r.params, r.seq.numOutputTokens) || r.banned.length > 0);
    if (!need.some(Boolean)) return;
    const ws = this.ws;
    // rows without penalties get empty id lists and neutral factors: the kernel leaves them as they are
    const pad = (lists: number[][]): [number, number[]] => {
      const w = Math.max(1, ...lists.map((l) => l.length));
      return [w, lists.flatMap((l) => [...l, ...new Array(w - l.length).fill(-1)])];
    };
    const [wp, prompt] = pad(samples.map((r, i) => (need[i] && r.params.repetitionPenalty !== 1 ? r.seq.promptTokenIds : [])));
    const [wo, output] = pad(samples.map((r, i) => (need[i] ? r.seq.outputTokenIds : [])));
    const [wb, banned] = pad(samples.map((r) => r.banned));
    const p = ws.hostInputs(s, 'penalty', R, {
      repetition: ['f32', samples.map((r) => r.params.repetitionPenalty)],
      frequency: ['f32', samples.map((r) => r.params.frequencyPenalty)],
      presence: ['f32', samples.map((r) => r.params.presencePenalty)],
    });
    const outputIds = ws.upload(s, 'penalty.output', [R, wo], output);
    // an output's last token may still be a placeholder: the previous launch is sampling it
    if (output.some((t) => t <= -2)) {
      if (!sampledBefore) throw new Error('penalties: an output token is a placeholder, but no earlier step sampled it');
      s.op('resolve_tokens', { ids: outputIds, sampled: sampledBefore });
    }
    s.op('apply_penalties', {
      logits: x,
      promptIds: ws.upload(s, 'penalty.prompt', [R, wp], prompt),
      outputIds,
      bannedIds: ws.upload(s, 'penalty.banned', [R, wb], banned),
      ...p,
    });
  }

  private recordLogprobs(s: CommandStream, name: string, x: Tensor, ids: Tensor, topN: number) {
    const n = x.shape[0];
    const logprob = this.ws.get(`${name}.logprob`, [n], 'f32');
    const topIds = topN > 0 ? this.ws.get(`${name}.top_ids`, [n, topN], 'i32') : undefined;
    const top = topN > 0 ? this.ws.get(`${name}.top`, [n, topN], 'f32') : undefined;
    s.op('logprobs', { logits: x, ids, topN, outLogprob: logprob, outTopIds: topIds, outTopLogprobs: top });
    return { logprob, topIds, top, n: topN };
  }

  private async readLogprobs(s: CommandStream, t: { logprob: Tensor; topIds?: Tensor; top?: Tensor; n: number }): Promise<TokenLogprobs[]> {
    const [lb, ib, tb] = await Promise.all([s.read(t.logprob), t.topIds ? s.read(t.topIds) : undefined, t.top ? s.read(t.top) : undefined]);
    const lps = new Float32Array(lb.buffer.slice(lb.byteOffset, lb.byteOffset + lb.byteLength));
    const tids = ib ? new Int32Array(ib.buffer.slice(ib.byteOffset, ib.byteOffset + ib.byteLength)) : undefined;
    const tlp = tb ? new Float32Array(tb.buffer.slice(tb.byteOffset, tb.byteOffset + tb.byteLength)) : undefined;
    return Array.from(lps, (logprob, i) => ({
      logprob,
      top: Array.from({ length: t.n }, (_, j) => ({ id: tids![i * t.n + j], logprob: tlp![i * t.n + j] })),
    }));
  }

  free(): void {
    this.ws.free();
    this.host.clear();
  }
}

function slice(x: TokenLogprobs, n: number): TokenLogprobs {
  return { logprob: x.logprob, top: x.top.slice(0, n) };
}

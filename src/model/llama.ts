// The LLaMA-family forward pass (Llama-2/3/3.1, Mistral, Qwen2) on the device layer. One call
// runs one engine step for a batch that mixes prefill chunks and decode tokens, records every
// dispatch of the step into one command stream, submits once, and returns the logits of the
// last token of each sequence, or ids sampled on the device.

import { type CommandStream, type Device, type Tensor, WEIGHT_TILE_ROWS } from '../device/device.ts';
import type { DType } from '../device/dtype.ts';
import { alignedRows, fromArray, rows } from '../device/tensor.ts';
import type { ModelConfig } from './config.ts';
import type { KvCache } from './kv-cache.ts';
import { ropeCosSin, ropeInvFreq } from './rope.ts';
import { type ModelWeights, freeWeights } from './weights.ts';
import { Workspace } from './workspace.ts';

/** One sequence's part of a step: `queryLen` new tokens at the end of its `contextLen` tokens. */
export interface StepSeq {
  queryLen: number;
  contextLen: number;
  /** Block ids of the sequence, in order; must cover contextLen tokens. */
  blockTable: number[];
}

/** A step's batch: tokens of each sequence contiguous, sequences in `seqs` order. */
export interface StepInput {
  tokenIds: ArrayLike<number>; // [numTokens]
  positions: ArrayLike<number>; // [numTokens]
  slotMapping: ArrayLike<number>; // [numTokens], block * blockSize + offset
  seqs: StepSeq[];
  /**
   * The previous step's sampled ids, still on the device, where tokenIds holds placeholders
   * (-2 - row: the token sampled in that row); the device fills them in before the embedding.
   */
  sampledBefore?: Tensor;
}

/** Per-sequence sampling on the device: temperature 0 = greedy. */
export interface DeviceSampling {
  temperature: ArrayLike<number>;
  topK: ArrayLike<number>;
  topP: ArrayLike<number>;
  /** min_p per sequence (0 = off); absent: off for all */
  minP?: ArrayLike<number>;
  /** uniform draws in [0, 1), one per sequence */
  draws: ArrayLike<number>;
}

export interface LlamaModelOptions {
  /**
   * A step that mixes decodes with prompt chunks runs the attention of its leading decode rows
   * through paged_attention and the rest through prefill_attention, where it leads with at least
   * this many decode rows (0: off, one prefill_attention for the whole step). The prefill kernels
   * give each sequence whole tiles of query rows, which a one-row decode mostly wastes: on an H100
   * the 7B throughput run's mixed steps (~250 decodes beside ~1,800 prompt tokens) spent 2.8 ms a
   * layer in the WebGPU tile loop. Default PARALLM_SPLIT_ATTENTION, else 8 on webgpu and 0
   * elsewhere (native's prefill kernel takes decode rows cheaply).
   */
  splitDecodeRows?: number;
}

/** PARALLM_ACTIVATIONS=f32 keeps f32 activations everywhere (A/B runs; see LlamaModel.activationDtype). */
const F32_ACTIVATIONS = process.env.PARALLM_ACTIVATIONS === 'f32';

export class LlamaModel {
  private readonly ws: Workspace;
  /** see LlamaModelOptions.splitDecodeRows (settable: tests run a step both ways) */
  splitDecodeRows: number;
  /** [maxPositions, headDim]: cos and sin of every position's rotary angles */
  private readonly cosSin: Tensor;
  /** q, k and v projections fused per layer: [qw + 2 * kvw, hidden], q rows, then k's, then v's */
  private readonly qkv: Tensor[] = [];
  /** their biases, fused alike (Qwen2): [qw + 2 * kvw] f32 */
  private readonly qkvBias: (Tensor | undefined)[] = [];
  /** gate and up projections fused per layer: [2 * intermediate, hidden], gate rows first */
  private readonly gateUp: Tensor[] = [];

  constructor(
    readonly device: Device,
    readonly config: ModelConfig,
    readonly weights: ModelWeights,
    options: LlamaModelOptions = {},
  ) {
    const env = process.env.PARALLM_SPLIT_ATTENTION;
    this.splitDecodeRows = options.splitDecodeRows ?? (env !== undefined && env !== '' ? Number(env) : device.info.backend === 'webgpu' ? 8 : 0);
    if (!Number.isInteger(this.splitDecodeRows) || this.splitDecodeRows < 0) throw new Error(`splitDecodeRows (PARALLM_SPLIT_ATTENTION) must be a whole number >= 0, not ${this.splitDecodeRows}`);
    const maxPos = config.maxPositionEmbeddings;
    this.cosSin = fromArray(device, ropeCosSin(ropeInvFreq(config), maxPos), [maxPos, config.headDim], 'f32', 'rope_cos_sin');
    this.ws = new Workspace(device, config);
    // One matmul by stacked weights where the op after it takes the outputs side by side in one
    // row: qkv_rope_cache takes q, k and v (and Qwen2's biases alike), silu_and_mul gate and up.
    // The separate tensors are freed once copied; the layer's fields become views of the stacks.
    // The matmul weights then go into the layout the device's matmuls read fastest
    // (Device.packWeight; the webgpu backend tiles them where it has subgroup matrices).
    for (const [i, l] of weights.layers.entries()) {
      let views: Tensor[];
      [this.qkv[i], views] = this.packStack(...this.stack([l.qProj, l.kProj, l.vProj], 'qkv'));
      [l.qProj, l.kProj, l.vProj] = views;
      if (l.qBias || l.kBias || l.vBias) {
        if (!l.qBias || !l.kBias || !l.vBias) throw new Error('q, k and v projections must all have biases or none');
        [this.qkvBias[i], views] = this.stack([l.qBias, l.kBias, l.vBias], 'qkv_bias');
        [l.qBias, l.kBias, l.vBias] = views;
      }
      [this.gateUp[i], views] = this.packStack(...this.stack([l.gateProj, l.upProj], 'gate_up'));
      [l.gateProj, l.upProj] = views;
      l.oProj = this.packOwn(l.oProj);
      l.downProj = this.packOwn(l.downProj);
    }
    if (weights.lmHead !== weights.embedTokens) weights.lmHead = this.packOwn(weights.lmHead);
  }

  /** A loaded weight packed by the device, its row-major buffer freed (or the weight itself). */
  private packOwn(w: Tensor): Tensor {
    const p = this.device.packWeight?.(w) ?? w;
    if (p !== w) this.device.free(w.buffer);
    return p;
  }

  /**
   * A stack packed by the device, with its parts' views taken again in the packed tensor, where
   * every part starts on a whole tile of rows (a packed weight has no other row views); else the
   * stack and its views as they were.
   */
  private packStack(t: Tensor, views: Tensor[]): [Tensor, Tensor[]] {
    const starts: number[] = [];
    let at = 0;
    for (const v of views) {
      starts.push(at);
      at += v.shape[0];
    }
    if (starts.some((s) => s % WEIGHT_TILE_ROWS)) return [t, views];
    const p = this.device.packWeight?.(t) ?? t;
    if (p === t) return [t, views];
    this.ws.replacePersistent(t.buffer, p.buffer);
    return [p, views.map((v, j) => rows(p, starts[j], v.shape[0]))];
  }

  /** `parts` one after another along dim 0 in one new tensor (the parts freed), and their views in it. */
  private stack(parts: Tensor[], label: string): [Tensor, Tensor[]] {
    // a model built on these weights before packed them (packWeight): their bytes are not rows
    const packed = parts.find((p) => p.layout);
    if (packed) throw new Error(`LlamaModel: the ${label} weights were packed (${packed.layout}) by a model built on them before; load the weights again for another model`);
    const t = this.ws.persistent([parts.reduce((n, p) => n + p.shape[0], 0), ...parts[0].shape.slice(1)], parts[0].dtype, label);
    const s = this.device.stream();
    let at = 0;
    const views = parts.map((p) => {
      const v = rows(t, at, p.shape[0]);
      s.copy(p, v);
      at += p.shape[0];
      return v;
    });
    s.submit();
    for (const p of parts) this.device.free(p.buffer);
    return [t, views];
  }

  /**
   * Records the step and returns the logits [numSeqs, vocab] of each sequence's last token, or
   * [logitRows.length, vocab] of the tokens `logitRows` (all of them for a perplexity).
   */
  async logits(step: StepInput, cache: KvCache, logitRows?: ArrayLike<number>): Promise<Float32Array> {
    const s = this.device.stream({ label: 'step' });
    const logits = this.record(s, step, cache, logitRows);
    const out = s.read(logits);
    s.submit();
    const b = await out;
    return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  }

  /** Records the step and samples one token per sequence on the device; only ids come back. */
  async sample(step: StepInput, cache: KvCache, sampling?: DeviceSampling): Promise<Int32Array> {
    const s = this.device.stream({ label: 'step' });
    const logits = this.record(s, step, cache);
    const n = step.seqs.length;
    const ids = this.ws.get('sampled', [n], 'i32');
    if (!sampling) s.op('argmax', { x: logits, out: ids });
    else {
      const p = this.ws.hostInputs(s, 'sampling', n, {
        temperature: ['f32', sampling.temperature],
        topK: ['i32', sampling.topK],
        topP: ['f32', sampling.topP],
        minP: ['f32', sampling.minP ?? new Float32Array(n)],
        draws: ['f32', sampling.draws],
      });
      s.op('sample', { logits, temperature: p.temperature, topK: p.topK, topP: p.topP, minP: p.minP, draws: p.draws, out: ids });
    }
    const out = s.read(ids);
    s.submit();
    const b = await out;
    return new Int32Array(b.buffer, b.byteOffset, n);
  }

  /**
   * The type of the matmuls' activations in a step of T tokens: the weights' 16-bit type where
   * the device prefers it (features.activations16: the native backend with a BLAS library, whose
   * BLAS call otherwise casts f32 activations in a kernel of its own first, 4-27% of the matmul's
   * time on an H100, docs/perf-notes.md) and its `supports` takes it at these shapes, else f32.
   * `spare` lends its buffer to the probes: none of the probed ops' other tensors use it.
   */
  private activationDtype(T: number, spare: Tensor, residual: Tensor, qkv: Tensor, gu: Tensor, hOut: Tensor): DType {
    const wdt = this.qkv[0].dtype;
    if (!this.device.info.features.activations16 || wdt === 'f32' || F32_ACTIVATIONS) return 'f32';
    const L = this.weights.layers[0];
    const c = this.config;
    const probe = (shape: number[]): Tensor => ({ buffer: spare.buffer, offset: 0, shape, dtype: wdt });
    const xn = probe([T, c.hiddenSize]);
    const act = probe([T, c.intermediateSize]);
    const d = this.device;
    const ok =
      d.supports('rms_norm', { x: hOut, residual, weight: L.inputNorm, out: xn, eps: c.rmsNormEps }).ok &&
      d.supports('matmul', { a: xn, w: this.qkv[0], bias: this.qkvBias[0], out: qkv }).ok &&
      d.supports('matmul', { a: xn, w: this.gateUp[0], out: gu }).ok &&
      d.supports('silu_and_mul', { x: gu, out: act }).ok &&
      d.supports('matmul', { a: act, w: L.downProj, out: hOut }).ok;
    return ok ? wdt : 'f32';
  }

  /**
   * Records the whole forward pass of a step into `s`; returns the logits tensor [rows, vocab]
   * of the tokens `logitRows` (indices into the step's tokens; default: each sequence's last).
   */
  record(s: CommandStream, step: StepInput, cache: KvCache, logitRows?: ArrayLike<number>): Tensor {
    const c = this.config;
    const w = this.weights;
    const T = step.tokenIds.length;
    const S = step.seqs.length;
    const H = c.hiddenSize;
    const qw = c.numHeads * c.headDim;
    const kvw = c.numKvHeads * c.headDim;
    const I = c.intermediateSize;
    const ws = this.ws;

    // host inputs of the step, uploaded in order with the stream
    const maxBlocks = Math.max(1, ...step.seqs.map((q) => q.blockTable.length));
    const tables = new Int32Array(S * maxBlocks);
    step.seqs.forEach((q, i) => tables.set(q.blockTable, i * maxBlocks));
    const starts = new Int32Array(S + 1);
    const last = new Int32Array(S);
    step.seqs.forEach((q, i) => {
      starts[i + 1] = starts[i] + q.queryLen;
      last[i] = starts[i + 1] - 1;
    });
    if (starts[S] !== T) throw new Error(`step: sequences hold ${starts[S]} query tokens but ${T} token ids were given`);
    const inp = ws.hostInputs(s, 'step', T, { ids: ['i32', step.tokenIds], positions: ['i32', step.positions], slots: ['i32', step.slotMapping] });
    if (hasPlaceholder(step.tokenIds)) {
      if (!step.sampledBefore) throw new Error('step: a token id is a placeholder, but no earlier step sampled it (sampledBefore)');
      s.op('resolve_tokens', { ids: inp.ids, sampled: step.sampledBefore });
    }
    const rowsIn = logitRows ?? last;
    const R = rowsIn.length;
    const seqIn = ws.hostInputs(s, 'seqs', S, { contextLens: ['i32', step.seqs.map((q) => q.contextLen)] });
    const lastIn = ws.upload(s, 'logit_rows', [R], rowsIn);
    const queryStarts = ws.upload(s, 'query_starts', [S + 1], starts);
    const blockTables = ws.upload(s, 'block_tables', [S, maxBlocks], tables);

    const residual = ws.get('residual', [T, H], 'f32');
    const qkv = ws.get('qkv', [T, qw + 2 * kvw], 'f32');
    const q = ws.get('q', [T, qw], 'f32');
    const attn = ws.get('attn', [T, qw], 'f32');
    const hOut = ws.get('h_out', [T, H], 'f32');
    const gu = ws.get('gate_up', [T, 2 * I], 'f32');
    // the norms' and silu_and_mul's outputs feed only matmuls: in the weights' 16-bit type where
    // the device takes that (native with a BLAS library), which spares a cast kernel before each
    const adt = this.activationDtype(T, attn, residual, qkv, gu, hOut);
    const xn = ws.get('xn', [T, H], adt);
    const act = ws.get('act', [T, I], adt);

    s.op('embedding', { ids: inp.ids, table: w.embedTokens, out: residual });
    const decodeOnly = step.seqs.every((x) => x.queryLen === 1);
    // a mixed step: its leading decode rows through paged_attention, the rest through prefill
    const D = this.splitRows(step);
    let split: { btD: Tensor; clD: Tensor; btP: Tensor; clP: Tensor; qsP: Tensor } | undefined;
    if (D) {
      const startsP = starts.subarray(D).map((x) => x - D);
      split = {
        btD: rows(blockTables, 0, D),
        clD: rows(seqIn.contextLens, 0, D),
        btP: ws.upload(s, 'block_tables_p', [S - D, maxBlocks], tables.subarray(D * maxBlocks)),
        clP: ws.upload(s, 'context_lens_p', [S - D], step.seqs.slice(D).map((q) => q.contextLen)),
        qsP: ws.upload(s, 'query_starts_p', [S - D + 1], startsP),
      };
    }
    const scale = 1 / Math.sqrt(c.headDim);
    const eps = c.rmsNormEps;
    for (let l = 0; l < c.numLayers; l++) {
      const L = w.layers[l];
      // the input norm of layer 0 reads the embeddings; later ones add the previous MLP output first
      if (l === 0) s.op('rms_norm', { x: residual, weight: L.inputNorm, out: xn, eps });
      else s.op('rms_norm', { x: hOut, residual, weight: L.inputNorm, out: xn, eps });
      const kc = cache.keys[l];
      const vc = cache.values[l];
      // q, k, v in one matmul; rope on q and k, q out, k and v into the cache in one kernel
      s.op('matmul', { a: xn, w: this.qkv[l], bias: this.qkvBias[l], out: qkv });
      s.op('qkv_rope_cache', { qkv, positions: inp.positions, cosSin: this.cosSin, numHeads: c.numHeads, numKvHeads: c.numKvHeads, headSize: c.headDim, q, keyCache: kc, valueCache: vc, slotMapping: inp.slots });
      if (decodeOnly) {
        s.op('paged_attention', { q, keyCache: kc, valueCache: vc, blockTables, contextLens: seqIn.contextLens, out: attn, scale });
      } else if (split) {
        s.op('paged_attention', { q: rows(q, 0, D), keyCache: kc, valueCache: vc, blockTables: split.btD, contextLens: split.clD, out: rows(attn, 0, D), scale });
        s.op('prefill_attention', { q: rows(q, D, T - D), keyCache: kc, valueCache: vc, blockTables: split.btP, queryStarts: split.qsP, contextLens: split.clP, out: rows(attn, D, T - D), scale });
      } else {
        s.op('prefill_attention', { q, keyCache: kc, valueCache: vc, blockTables, queryStarts, contextLens: seqIn.contextLens, out: attn, scale });
      }
      s.op('matmul', { a: attn, w: L.oProj, bias: L.oBias, out: hOut });
      s.op('rms_norm', { x: hOut, residual, weight: L.postAttentionNorm, out: xn, eps });
      s.op('matmul', { a: xn, w: this.gateUp[l], out: gu });
      s.op('silu_and_mul', { x: gu, out: act });
      s.op('matmul', { a: act, w: L.downProj, out: hOut });
    }
    s.op('rms_norm', { x: hOut, residual, weight: w.norm, out: xn, eps });
    // only the rows whose logits are wanted go through the lm_head: gather them first
    const lastRows = ws.get('last_rows', [R, H], 'f32');
    s.op('embedding', { ids: lastIn, table: xn, out: lastRows });
    const logits = ws.get('logits', [R, c.vocabSize], 'f32');
    s.op('matmul', { a: lastRows, w: w.lmHead, out: logits });
    return logits;
  }

  /**
   * Runs the step shapes of an engine once so that their kernels are built before the first
   * request: Dawn compiles a pipeline when it is first used, blocking the host for 50-100 ms on
   * an H100 while the GPU waits (20 builds, 1.7 s, in a 7B throughput run of 300 requests).
   * Decodes of 1 to 16 rows (the decode matmul has a kernel per row count) and of `maxRows`, a
   * mixed step (decodes ahead of a prompt chunk), and a prompt of up to `maxTokens` tokens, with
   * argmax and with the device sampler. Every sequence writes K/V to slot 0 of block 0, and a
   * prompt to the blocks from 0 on: nothing is cached yet, and a real sequence writes a slot
   * before any attention reads it.
   */
  async warmup(cache: KvCache, opts: { maxRows: number; maxTokens: number }): Promise<void> {
    const B = cache.blockSize;
    const decodes = (m: number): StepInput => ({
      tokenIds: new Array(m).fill(1),
      positions: new Array(m).fill(0),
      slotMapping: new Array(m).fill(0),
      seqs: Array.from({ length: m }, () => ({ queryLen: 1, contextLen: 1, blockTable: [0] })),
    });
    const prompt = (n: number): StepInput => {
      const blocks = Math.ceil(n / B);
      return {
        tokenIds: new Array(n).fill(1),
        positions: Array.from({ length: n }, (_, i) => i),
        slotMapping: Array.from({ length: n }, (_, i) => i),
        seqs: [{ queryLen: n, contextLen: n, blockTable: Array.from({ length: blocks }, (_, i) => i) }],
      };
    };
    const join = (a: StepInput, b: StepInput): StepInput => ({
      tokenIds: [...Array.from(a.tokenIds), ...Array.from(b.tokenIds)],
      positions: [...Array.from(a.positions), ...Array.from(b.positions)],
      slotMapping: [...Array.from(a.slotMapping), ...Array.from(b.slotMapping)],
      seqs: [...a.seqs, ...b.seqs],
    });
    const greedy = (n: number): DeviceSampling => ({ temperature: new Float32Array(n), topK: new Int32Array(n), topP: new Float32Array(n).fill(1), draws: new Float32Array(n) });
    const cap = Math.max(1, Math.min(opts.maxTokens, cache.numBlocks * B, this.config.maxPositionEmbeddings));
    // decodes of 1-16 rows (the WebGPU gemv kernels are compiled per row count), of 32, 48 and
    // 64 (matmul_gemv_mma's pipelines are per 16 rows up to 64: without these, the first steps
    // of 17-64 sequences built them mid-run, ~100 ms each on an H200) and of the most rows
    const most = Math.max(1, Math.min(opts.maxRows, cap));
    const rowsList = [...new Set([...Array.from({ length: 16 }, (_, i) => i + 1), ...[32, 48, 64].filter((m) => m < most), most])];
    for (const m of rowsList) await this.sample(decodes(m), cache, greedy(m));
    // a step whose token is the one the step before sampled, still on the device (step overlap), with argmax
    await this.sample({ ...decodes(1), tokenIds: [-2], sampledBefore: this.ws.get('sampled', [1], 'i32') }, cache);
    // decodes at longer contexts: the decode kernel's partitions follow the longest one
    const longRows = Math.max(1, Math.min(opts.maxRows, cap));
    for (let ctx = 64; ctx <= Math.min(cap, 4096); ctx *= 2) {
      const table = Array.from({ length: Math.ceil(ctx / B) }, (_, i) => i);
      for (const m of new Set([1, longRows])) {
        await this.sample({ ...decodes(m), seqs: Array.from({ length: m }, () => ({ queryLen: 1, contextLen: ctx, blockTable: table })) }, cache, greedy(m));
      }
    }
    const chunk = Math.min(cap - 8, 64);
    if (chunk > 0) await this.sample(join(decodes(8), prompt(chunk)), cache, greedy(9));
    // several short prompt chunks (prefill kernels are picked by the mean query length)
    if (cap >= 32) {
      let many = prompt(4);
      for (let i = 1; i < 8; i++) many = join(many, prompt(4));
      await this.sample(many, cache, greedy(8));
    }
    await this.sample(prompt(cap), cache, greedy(1));
  }

  /**
   * The decode rows that lead a mixed step, where there are at least splitDecodeRows of them, cut
   * to a count whose q rows end on the device's binding alignment (the prefill part's q and out
   * start there); 0 where the step is not split.
   */
  splitRows(step: StepInput): number {
    if (!this.splitDecodeRows) return 0;
    let d = 0;
    while (d < step.seqs.length && step.seqs[d].queryLen === 1) d++;
    if (d === step.seqs.length) return 0; // decodes only: paged_attention takes the whole step
    d -= d % alignedRows(this.config.numHeads * this.config.headDim * 4, this.device.info.bindingAlignment);
    return d >= this.splitDecodeRows ? d : 0;
  }

  free(): void {
    // q/k/v, their biases and gate/up are views of the workspace's stacked buffers, freed twice: devices ignore a second free
    freeWeights(this.device, this.weights);
    this.ws.free();
    this.device.free(this.cosSin.buffer);
  }
}

function hasPlaceholder(ids: ArrayLike<number>): boolean {
  for (let i = 0; i < ids.length; i++) if (ids[i] <= -2) return true;
  return false;
}

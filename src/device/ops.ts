// The op list of the device layer: names, typed params, and the shape/dtype rules that every
// backend shares. A backend's `supports` starts from `checkOp` and adds its own limits.
//
// Notation: `x: [n, h] f32` is a contiguous row-major tensor of n rows of h f32 values.

import { type DType, byteSize } from './dtype.ts';
import type { Support, Tensor } from './device.ts';
import { type KvPool, MAX_KV_PARTS, poolParts } from './kv-pool.ts';

export type WeightDType = 'f32' | 'f16' | 'bf16';

export interface OpArgs {
  /** out[i, :] = table[ids[i], :]. ids: [n] i32, table: [vocab, h] f32|f16|bf16, out: [n, h] f32 */
  embedding: { ids: Tensor; table: Tensor; out: Tensor };
  /**
   * RMSNorm with an optional fused residual add (vLLM's fused_add_rms_norm):
   * with residual: residual <- x + residual; out <- norm(residual) * weight.
   * x, residual: [n, h] f32; weight: [h] f32|f16|bf16; out: [n, h] f32 (may alias x), or f16|bf16
   * where the backend takes 16-bit activations (out rounded from f32: the input of a matmul whose
   * a is 16-bit, with no cast of its own; see matmul)
   */
  rms_norm: { x: Tensor; weight: Tensor; out: Tensor; residual?: Tensor; eps: number };
  /**
   * Rotary embedding in place on the first `numHeads` heads of each row of x, neox/LLaMA layout
   * (pairs i and i + rot/2) or interleaved (GPT-J: pairs 2i, 2i+1). cosSin is the table of
   * cos and sin of every position's angles, computed once on the host in float64 from the
   * inverse frequencies (rope_theta and any rope_scaling; see src/model/rope.ts): GPU sin/cos
   * may be as coarse as Vulkan allows (2^-11 absolute), which drifted a 7B model's logits.
   * x: [n, w] f32 with w >= numHeads * headSize; positions: [n] i32 (< maxPos);
   * cosSin: [maxPos, rot] f32, cos in [:, :rot/2], sin in [:, rot/2:], rot <= headSize
   */
  rope: { x: Tensor; positions: Tensor; cosSin: Tensor; numHeads: number; headSize: number; interleaved?: boolean };
  /** out = silu(x[:, :i]) * x[:, i:]. x: [n, 2i] f32, out: [n, i] f32, or f16|bf16 as rms_norm's out */
  silu_and_mul: { x: Tensor; out: Tensor };
  /**
   * out = a @ w^T (+ bias). a: [m, k] f32, or of w's 16-bit type where the backend takes 16-bit
   * activations (the native backend with a BLAS library: its f32 a is cast to w's type first, a
   * kernel of its own); w: [n, k] f32|f16|bf16 (HF Linear layout); bias: [n] f32; out: [m, n] f32.
   * `kernel` forces a variant (benchmarks and tests); by default the backend picks by m and features.
   */
  matmul: { a: Tensor; w: Tensor; bias?: Tensor; out: Tensor; kernel?: MatmulKernel };
  /** Row softmax. x, out: [n, v] f32 (out may alias x) */
  softmax: { x: Tensor; out: Tensor };
  /** Index of each row's largest value (the lowest index on ties). x: [n, v] f32; out: [n] i32 */
  argmax: { x: Tensor; out: Tensor };
  /**
   * One token per row from softmax(logits / temperature) restricted to the top-k and then the
   * top-p (nucleus) set, by inverse CDF in vocabulary order at the row's uniform draw in [0, 1).
   * temperature 0 means greedy; topK <= 0 or >= v means no top-k; topP >= 1 means no top-p.
   * min_p then keeps only tokens whose probability is at least minP times the largest one, i.e.
   * logits >= max + temperature * ln(minP), computed in f32; minP <= 0 means no min-p (> 1 acts
   * as 1). Tokens of probability 0 (-inf logits, e.g. banned by apply_penalties) are never drawn.
   * logits: [n, v] f32; temperature, topP, minP, draws: [n] f32; topK: [n] i32; out: [n] i32
   */
  sample: { logits: Tensor; temperature: Tensor; topK: Tensor; topP: Tensor; minP: Tensor; draws: Tensor; out: Tensor };
  /**
   * vLLM's penalties, in place on the logits, each off at its neutral value: a token of the
   * prompt or the output is divided by `repetition` where its logit is > 0, else multiplied
   * (1 = off); then `frequency` times its count in the output and `presence` once if it occurs
   * in the output are subtracted (0 = off); banned tokens (min_tokens holding back EOS and stop
   * ids) become -inf. Id lists are padded with -1; ids outside [0, v) are ignored; widths may be 0.
   * logits: [n, v] f32; promptIds: [n, maxPrompt] i32; outputIds: [n, maxOut] i32;
   * repetition, frequency, presence: [n] f32; bannedIds: [n, maxBanned] i32
   */
  apply_penalties: { logits: Tensor; promptIds: Tensor; outputIds: Tensor; repetition: Tensor; frequency: Tensor; presence: Tensor; bannedIds: Tensor };
  /**
   * log_softmax of each raw row at its chosen token, and the row's topN largest log-probs with
   * their ids in descending order (ties: the lower id first); topN 0..20, at most v (with 0 the
   * top tensors may be absent). An id outside [0, v) gives NaN.
   * logits: [n, v] f32; ids: [n] i32; outLogprob: [n] f32; outTopIds: [n, topN] i32;
   * outTopLogprobs: [n, topN] f32
   */
  logprobs: { logits: Tensor; ids: Tensor; topN: number; outLogprob: Tensor; outTopIds?: Tensor; outTopLogprobs?: Tensor };
  /** out = x, as a kernel (the bandwidth ceiling of the op benchmark). x, out: [n] f32 */
  copy: { x: Tensor; out: Tensor };
  /**
   * Fills in, in place, token ids the host did not know when it built a step: every value
   * v <= -2 of ids becomes sampled[-v - 2] (the token sampled in that row of the previous step,
   * still on the device); other values (token ids, -1 padding) stay; a placeholder whose row is
   * outside sampled becomes -1. The engine's step overlap builds step N+1 while step N runs.
   * ids: any shape, i32 (read as flat); sampled: [m] i32
   */
  resolve_tokens: { ids: Tensor; sampled: Tensor };
  /**
   * Writes each new token's K and V into its slot of the paged cache: slot = block * blockSize
   * + offset; a negative slot (padding) is skipped.
   * key, value: [n, numKvHeads * headSize] f32; keyCache, valueCache: [numBlocks, blockSize,
   * numKvHeads, headSize] f16 | f32, or that pool in parts (src/device/kv-pool.ts; the K and V
   * pools split alike); slotMapping: [n] i32
   */
  reshape_and_cache: { key: Tensor; value: Tensor; keyCache: KvPool; valueCache: KvPool; slotMapping: Tensor };
  /**
   * The attention input of a layer after one fused q/k/v matmul, in one kernel: rotary embedding
   * (neox layout) on the q and k heads of each row, q written out, k and v written into their
   * slots of the paged cache. Equal to rope on q, rope on k (rounded to f32 as rope's output),
   * then reshape_and_cache of k and v: the same products and sums as rope, q written for every
   * row, a negative slot skipping only the cache writes. numKvHeads and headSize are the caches'.
   * qkv: [n, (numHeads + 2 * numKvHeads) * headSize] f32, each row q's heads, then k's, then v's;
   * positions: [n] i32 (< maxPos); cosSin: [maxPos, rot] f32 as rope's; q: [n, numHeads *
   * headSize] f32 (apart from qkv); keyCache, valueCache as reshape_and_cache; slotMapping: [n] i32
   */
  qkv_rope_cache: {
    qkv: Tensor;
    positions: Tensor;
    cosSin: Tensor;
    numHeads: number;
    numKvHeads: number;
    headSize: number;
    q: Tensor;
    keyCache: KvPool;
    valueCache: KvPool;
    slotMapping: Tensor;
  };
  /**
   * Copies whole blocks within the caches (copy-on-write of a shared last block): block
   * pairs[i][1] <- block pairs[i][0] in both keyCache and valueCache. A device copy cannot do
   * this: WebGPU forbids copying a buffer into itself. Source and destination may lie in
   * different parts of a split pool.
   * caches as reshape_and_cache; pairs: [m, 2] i32 (src, dst)
   */
  copy_blocks: { keyCache: KvPool; valueCache: KvPool; pairs: Tensor };
  /**
   * Decode attention over the paged cache: one query token per sequence, attending to the
   * sequence's first contextLens[s] tokens through its block table; GQA (numHeads a multiple
   * of numKvHeads). Long contexts are split into partitions of `partitionSize` tokens whose
   * partial results are merged (vLLM's v2); 0 or absent lets the backend choose.
   * q, out: [numSeqs, numHeads * headSize] f32; caches as reshape_and_cache; blockTables:
   * [numSeqs, maxBlocksPerSeq] i32; contextLens: [numSeqs] i32
   */
  paged_attention: { q: Tensor; keyCache: KvPool; valueCache: KvPool; blockTables: Tensor; contextLens: Tensor; out: Tensor; scale: number; partitionSize?: number };
  /**
   * Causal attention for prefill chunks of several sequences in one launch, reading every key
   * and value (earlier context and this chunk's, already written by reshape_and_cache) from the
   * paged cache, so a cached prefix or a chunked prefill needs nothing else. Sequence s owns
   * query rows [queryStarts[s], queryStarts[s+1]); its queries sit at the last positions of
   * its contextLens[s] tokens, and query i attends to positions <= its own.
   * q, out: [numTokens, numHeads * headSize] f32; queryStarts: [numSeqs + 1] i32; others as paged_attention
   */
  prefill_attention: { q: Tensor; keyCache: KvPool; valueCache: KvPool; blockTables: Tensor; queryStarts: Tensor; contextLens: Tensor; out: Tensor; scale: number };
}

export type OpName = keyof OpArgs;
export const OP_NAMES: OpName[] = [
  'embedding',
  'rms_norm',
  'rope',
  'silu_and_mul',
  'matmul',
  'softmax',
  'argmax',
  'sample',
  'apply_penalties',
  'logprobs',
  'copy',
  'resolve_tokens',
  'reshape_and_cache',
  'qkv_rope_cache',
  'copy_blocks',
  'paged_attention',
  'prefill_attention',
];

/** The most top log-probs per token the logprobs op returns (OpenAI's top_logprobs limit). */
export const MAX_TOP_LOGPROBS = 20;

/**
 * Matmul variants: `gemv` for few rows (memory-bound decode; `gemv_sg` its subgroup version;
 * `gemv_rows` streams each weight once for all rows; `gemv_mma` streams them into the matrix
 * units, for up to GEMV_MMA_MAX_ROWS rows), `tiled` the portable prefill kernel,
 * `sgmat` prefill on the matrix units (subgroup matrices). A backend without a separate
 * kernel for a gemv variant runs its own gemv.
 */
export type MatmulKernel = 'gemv' | 'gemv_sg' | 'gemv_rows' | 'gemv_mma' | 'tiled' | 'sgmat';
export const MATMUL_KERNELS: MatmulKernel[] = ['gemv', 'gemv_sg', 'gemv_rows', 'gemv_mma', 'tiled', 'sgmat'];
/** The kernels for few rows (a backend's own gemv where it has no such kernel). */
export const GEMV_KERNELS: readonly MatmulKernel[] = ['gemv', 'gemv_sg', 'gemv_rows', 'gemv_mma'];
/** Rows up to which `gemv_mma` works (the other gemv kernels: GEMV_MAX_ROWS of the backend). */
export const GEMV_MMA_MAX_ROWS = 64;

const OK: Support = { ok: true };
const no = (reason: string): Support => ({ ok: false, reason });

function shapeStr(t: Tensor): string {
  return `[${t.shape.join(', ')}] ${t.dtype}`;
}

/** Checks that t has the given rank and dtype(s); dims given as numbers must match. */
function expect(name: string, t: Tensor | undefined, dtypes: DType[], dims: (number | undefined)[]): string | undefined {
  if (!t) return `${name} is missing`;
  if (!dtypes.includes(t.dtype)) return `${name} must be ${dtypes.join('|')}, got ${shapeStr(t)}`;
  if (t.shape.length !== dims.length) return `${name} must have rank ${dims.length}, got ${shapeStr(t)}`;
  for (let i = 0; i < dims.length; i++) {
    const d = dims[i];
    if (d !== undefined && t.shape[i] !== d) return `${name} dim ${i} must be ${d}, got ${shapeStr(t)}`;
  }
  return undefined;
}

const W: DType[] = ['f32', 'f16', 'bf16'];
const KV: DType[] = ['f32', 'f16'];
const F: DType[] = ['f32'];
const I: DType[] = ['i32'];

/** Shape and dtype rules of each op, independent of the backend. */
export function checkOp<K extends OpName>(name: K, args: OpArgs[K]): Support {
  const err = check(name, args);
  return err ? no(`${name}: ${err}`) : OK;
}

function check(name: OpName, a: any): string | undefined {
  // a packed weight (Device.packWeight) is read by its device's matmul as w, by nothing else
  for (const key in a) {
    const t = a[key] as Tensor | undefined;
    const layout = t?.layout;
    if (!layout) continue;
    if (!(name === 'matmul' && key === 'w')) return `${key} is a packed (${layout}) weight, which only matmul's w may be`;
    if (t!.dtype !== 'f16') return `a packed (${layout}) weight must be f16, got ${t!.dtype}`;
    if (!t!.buffer.device.packWeight) return `w is packed (${layout}), and this device's matmul reads row-major weights only`;
  }
  switch (name) {
    case 'embedding': {
      const n = a.ids?.shape[0];
      const h = a.table?.shape[1];
      return expect('ids', a.ids, I, [undefined]) ?? expect('table', a.table, W, [undefined, undefined]) ?? expect('out', a.out, F, [n, h]);
    }
    case 'rms_norm': {
      const [n, h] = a.x?.shape ?? [];
      return (
        expect('x', a.x, F, [undefined, undefined]) ??
        expect('weight', a.weight, W, [h]) ??
        expect('out', a.out, W, [n, h]) ??
        (a.out.dtype !== 'f32' && (overlap(a.out, a.x) || (a.residual && overlap(a.out, a.residual))) ? 'a 16-bit out must not alias x or residual' : undefined) ??
        (a.residual ? expect('residual', a.residual, F, [n, h]) : undefined) ??
        (a.eps > 0 ? undefined : `eps must be > 0, got ${a.eps}`)
      );
    }
    case 'rope': {
      const n = a.x?.shape[0];
      const e = expect('x', a.x, F, [undefined, undefined]) ?? expect('positions', a.positions, I, [n]) ?? expect('cosSin', a.cosSin, F, [undefined, undefined]);
      if (e) return e;
      if (!(a.headSize > 0 && a.headSize % 2 === 0)) return `headSize must be even and > 0, got ${a.headSize}`;
      if (a.numHeads * a.headSize > a.x.shape[1]) return `numHeads * headSize = ${a.numHeads * a.headSize} exceeds row width ${a.x.shape[1]}`;
      const rot = a.cosSin.shape[1];
      if (rot % 2 || rot > a.headSize) return `rotary dim ${rot} must be even and at most headSize ${a.headSize}`;
      return undefined;
    }
    case 'silu_and_mul': {
      const [n, w] = a.x?.shape ?? [];
      if (w % 2) return `x width must be even, got ${w}`;
      return expect('x', a.x, F, [undefined, undefined]) ?? expect('out', a.out, W, [n, w / 2]);
    }
    case 'matmul': {
      const [m, k] = a.a?.shape ?? [];
      const n = a.w?.shape[0];
      return (
        expect('a', a.a, W, [undefined, undefined]) ??
        expect('w', a.w, W, [undefined, k]) ??
        (a.a.dtype !== 'f32' && a.a.dtype !== a.w.dtype ? `a 16-bit a must be of w's type, got a ${shapeStr(a.a)} and w ${shapeStr(a.w)}` : undefined) ??
        (a.bias ? expect('bias', a.bias, F, [n]) : undefined) ??
        expect('out', a.out, F, [m, n])
      );
    }
    case 'softmax': {
      const [n, v] = a.x?.shape ?? [];
      return expect('x', a.x, F, [undefined, undefined]) ?? expect('out', a.out, F, [n, v]);
    }
    case 'argmax':
      return expect('x', a.x, F, [undefined, undefined]) ?? expect('out', a.out, I, [a.x.shape[0]]);
    case 'sample': {
      const n = a.logits?.shape[0];
      return (
        expect('logits', a.logits, F, [undefined, undefined]) ??
        expect('temperature', a.temperature, F, [n]) ??
        expect('topK', a.topK, I, [n]) ??
        expect('topP', a.topP, F, [n]) ??
        expect('minP', a.minP, F, [n]) ??
        expect('draws', a.draws, F, [n]) ??
        expect('out', a.out, I, [n])
      );
    }
    case 'apply_penalties': {
      const n = a.logits?.shape[0];
      return (
        expect('logits', a.logits, F, [undefined, undefined]) ??
        expect('promptIds', a.promptIds, I, [n, undefined]) ??
        expect('outputIds', a.outputIds, I, [n, undefined]) ??
        expect('repetition', a.repetition, F, [n]) ??
        expect('frequency', a.frequency, F, [n]) ??
        expect('presence', a.presence, F, [n]) ??
        expect('bannedIds', a.bannedIds, I, [n, undefined])
      );
    }
    case 'logprobs': {
      const [n, v] = a.logits?.shape ?? [];
      const e = expect('logits', a.logits, F, [undefined, undefined]) ?? expect('ids', a.ids, I, [n]) ?? expect('outLogprob', a.outLogprob, F, [n]);
      if (e) return e;
      const k = a.topN;
      if (!(Number.isInteger(k) && k >= 0 && k <= MAX_TOP_LOGPROBS && k <= v)) return `topN must be an integer in 0..${Math.min(MAX_TOP_LOGPROBS, v)}, got ${k}`;
      if (k === 0 && !a.outTopIds && !a.outTopLogprobs) return undefined;
      return expect('outTopIds', a.outTopIds, I, [n, k]) ?? expect('outTopLogprobs', a.outTopLogprobs, F, [n, k]);
    }
    case 'copy':
      return expect('x', a.x, F, [undefined]) ?? expect('out', a.out, F, [a.x.shape[0]]);
    case 'resolve_tokens':
      if (!a.ids || a.ids.dtype !== 'i32') return `ids must be i32, got ${a.ids ? shapeStr(a.ids) : 'nothing'}`;
      return expect('sampled', a.sampled, I, [undefined]);
    case 'reshape_and_cache': {
      const e = checkCaches(a);
      if (e) return e;
      const [, , kvh, hs] = poolParts(a.keyCache)[0].shape;
      const n = a.slotMapping?.shape[0];
      return expect('slotMapping', a.slotMapping, I, [undefined]) ?? expect('key', a.key, F, [n, kvh * hs]) ?? expect('value', a.value, F, [n, kvh * hs]);
    }
    case 'qkv_rope_cache': {
      const e = checkCaches(a);
      if (e) return e;
      const [, , kvh, hs] = poolParts(a.keyCache)[0].shape;
      if (a.numKvHeads !== kvh || a.headSize !== hs) return `numKvHeads and headSize must be the caches' (${kvh} kv heads of ${hs}), got ${a.numKvHeads} of ${a.headSize}`;
      if (!(Number.isInteger(a.numHeads) && a.numHeads > 0)) return `numHeads must be a whole number > 0, got ${a.numHeads}`;
      const n = a.slotMapping?.shape[0];
      const err =
        expect('slotMapping', a.slotMapping, I, [undefined]) ??
        expect('qkv', a.qkv, F, [n, (a.numHeads + 2 * kvh) * hs]) ??
        expect('positions', a.positions, I, [n]) ??
        expect('cosSin', a.cosSin, F, [undefined, undefined]) ??
        expect('q', a.q, F, [n, a.numHeads * hs]);
      if (err) return err;
      const rot = a.cosSin.shape[1];
      if (rot % 2 || rot > hs) return `rotary dim ${rot} must be even and at most headSize ${hs}`;
      // other threads still read the k and v columns (and the partner half of a head) of a row whose q is written
      if (overlap(a.q, a.qkv)) return 'q must not overlap qkv';
      return undefined;
    }
    case 'copy_blocks':
      return checkCaches(a) ?? expect('pairs', a.pairs, I, [undefined, 2]);
    case 'paged_attention':
    case 'prefill_attention': {
      const e = checkCaches(a);
      if (e) return e;
      const [, , kvh, hs] = poolParts(a.keyCache)[0].shape;
      const rows = a.q?.shape[0];
      const numSeqs = a.contextLens?.shape[0];
      const base =
        expect('q', a.q, F, [undefined, undefined]) ??
        expect('out', a.out, F, [rows, a.q.shape[1]]) ??
        expect('contextLens', a.contextLens, I, [name === 'paged_attention' ? rows : undefined]) ??
        expect('blockTables', a.blockTables, I, [numSeqs, undefined]) ??
        (name === 'prefill_attention' ? expect('queryStarts', a.queryStarts, I, [numSeqs + 1]) : undefined);
      if (base) return base;
      const width = a.q.shape[1];
      if (width % hs || (width / hs) % kvh) return `q width ${width} must be numHeads * headSize with numHeads a multiple of ${kvh} kv heads of ${hs}`;
      if (!(a.scale > 0)) return `scale must be > 0, got ${a.scale}`;
      const ps = name === 'paged_attention' ? (a as OpArgs['paged_attention']).partitionSize : undefined;
      if (ps !== undefined && !(Number.isInteger(ps) && ps >= 0)) return `partitionSize must be a whole number of tokens (0 = let the backend choose), got ${ps}`;
      return undefined;
    }
  }
}

function overlap(x: Tensor, y: Tensor): boolean {
  return x.buffer === y.buffer && x.offset < y.offset + byteSize(y.shape, y.dtype) && y.offset < x.offset + byteSize(x.shape, x.dtype);
}

/** The K and V pools: one tensor each or parts alike (kv-pool.ts), of one dtype and row shape. */
function checkCaches(a: any): string | undefined {
  const ks = a.keyCache ? poolParts(a.keyCache) : [];
  const vs = a.valueCache ? poolParts(a.valueCache) : [];
  if (!ks.length || ks.length > MAX_KV_PARTS) return `keyCache must be a tensor or 1..${MAX_KV_PARTS} parts, got ${ks.length} parts`;
  if (vs.length !== ks.length) return `valueCache must have the parts of keyCache (${ks.length}), got ${vs.length}`;
  const part = (i: number) => (ks.length > 1 ? ` part ${i}` : '');
  const e = expect(`keyCache${part(0)}`, ks[0], KV, [undefined, undefined, undefined, undefined]);
  if (e) return e;
  const [per, ...row] = ks[0].shape;
  for (let i = 0; i < ks.length; i++) {
    // every part but the last holds `per` blocks (block b lives in part floor(b / per))
    const blocks = i < ks.length - 1 ? per : undefined;
    const err = expect(`keyCache${part(i)}`, ks[i], [ks[0].dtype], [blocks, ...row]) ?? expect(`valueCache${part(i)}`, vs[i], [ks[0].dtype], [...ks[i].shape]);
    if (err) return err;
    if (ks[i].shape[0] > per || ks[i].shape[0] < 1) return `keyCache part ${i} must hold 1..${per} blocks (as many as part 0 at most), got ${ks[i].shape[0]}`;
  }
  return row[2] % 2 ? `headSize must be even, got ${row[2]}` : undefined;
}

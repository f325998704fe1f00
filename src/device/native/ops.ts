// Op planner of the native backend: which kernels of native/kernels run an op, and their
// arguments by the names of the addon's layouts (native/src/addon.cpp kLayouts, the WGSL
// kernels' params). The addon's layout table is the one source of the argument order: the
// Launcher encodes named arguments by it and rejects a missing or unknown name.

import type { Support, Tensor } from '../device.ts';
import { GEMV_KERNELS, GEMV_MMA_MAX_ROWS, type MatmulKernel, type OpArgs, type OpName } from '../ops.ts';
import { byteSize, numel } from '../dtype.ts';
import { type KvPool, poolParts } from '../kv-pool.ts';
import type { NativeAddon } from './addon.ts';

/** Rows of a up to which matmul uses the gemv kernel (native/include/ops.h kGemvMaxRows). */
export const GEMV_MAX_ROWS = 16;
/**
 * Rows up to which pickMatmul chooses the gemv kernel where BLAS is there too
 * (PARALLM_NATIVE_GEMV_ROWS, 0 to GEMV_MAX_ROWS). Default 0: cuBLAS is faster at every row
 * count. On an H100 (118aac4) a 7B decode ran 141 against 116 tokens/s at 1 sequence, 514
 * against 337 at 4, 972 against 435 at 8, and 1,847 against 501 at 16 (docs/perf-notes.md).
 * Without BLAS, gemv takes up to GEMV_MAX_ROWS rows.
 */
export const GEMV_PICK_ROWS = gemvPickRows(process.env.PARALLM_NATIVE_GEMV_ROWS);

export function gemvPickRows(v: string | undefined): number {
  if (v === undefined || v === '') return 0;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > GEMV_MAX_ROWS) throw new Error(`PARALLM_NATIVE_GEMV_ROWS=${v}: expected a whole number from 0 to ${GEMV_MAX_ROWS}`);
  return n;
}
/** Largest head size of the attention kernels (ops.h kMaxHeadSize). */
export const MAX_HEAD_SIZE = 256;
/** Tokens per partition of paged_attention v2 when the backend chooses and the batch fills the GPU. */
export const DEFAULT_PARTITION_SIZE = 512;
/** v2 runs when a block table can hold more than this many tokens (as the webgpu planner). */
export const V2_MIN_CONTEXT = 2048;
/** Grid dimensions y and z hold at most this many blocks. */
const MAX_GRID_YZ = 65535;

const DTYPE_CODE = { f32: 0, f16: 1, bf16: 2 } as const;

/** One kernel launch, encoded: the addon's op code and its positional arguments. */
export interface Launch {
  code: number;
  args: Float64Array;
}

export class Launcher {
  private ops = new Map<string, { code: number; fields: string[] }>();
  /** While set, launches are collected here instead of run (see NativeStream's graphs). */
  collecting?: Launch[];
  constructor(private addon: NativeAddon) {
    addon.layouts().forEach((l, code) => this.ops.set(l.name, { code, fields: l.fields.split(' ') }));
  }

  launch(name: string, args: Record<string, number>): void {
    const op = this.ops.get(name);
    if (!op) throw new Error(`native: the addon has no kernel '${name}' (rebuild it: npm run build:native)`);
    const a = new Float64Array(op.fields.length);
    for (let i = 0; i < op.fields.length; i++) {
      const v = args[op.fields[i]];
      if (v === undefined) throw new Error(`native: ${name}.${op.fields[i]} not given`);
      a[i] = v;
    }
    if (Object.keys(args).length !== op.fields.length) {
      const extra = Object.keys(args).filter((k) => !op.fields.includes(k));
      throw new Error(`native: ${name} has no argument ${extra.join(', ')} (its layout: ${op.fields.join(' ')})`);
    }
    if (this.collecting) this.collecting.push({ code: op.code, args: a });
    else this.addon.launch(op.code, a);
  }
}

/** FNV-1a over launches: equal hashes (and equal launches, checked by the caller) replay one graph. */
export function launchesKey(launches: Launch[]): string {
  let h = 0x811c9dc5;
  let n = 0;
  for (const l of launches) {
    h = Math.imul(h ^ l.code, 0x01000193);
    const words = new Uint32Array(l.args.buffer, l.args.byteOffset, l.args.length * 2);
    for (let i = 0; i < words.length; i++) h = Math.imul(h ^ words[i], 0x01000193);
    n += l.args.length;
  }
  return `${launches.length}:${n}:${h >>> 0}`;
}

export function sameLaunches(a: Launch[], b: Launch[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i].code !== b[i].code || a[i].args.length !== b[i].args.length) return false;
    for (let j = 0; j < a[i].args.length; j++) if (a[i].args[j] !== b[i].args[j]) return false;
  }
  return true;
}

/** What the planner needs from the device. */
export interface PlanContext {
  launcher: Launcher;
  blas: boolean;
  /** Device address of a tensor's first byte. */
  ptr(t: Tensor): number;
  /** A device-owned scratch region of at least `bytes` (zeroed when `zero`: kept zero by its user). */
  scratch(name: string, bytes: number, zero?: boolean): number;
}

const no = (reason: string): Support => ({ ok: false, reason });
const OK: Support = { ok: true };

function sameMemory(a: Tensor, b: Tensor): boolean {
  return a.buffer === b.buffer && a.offset === b.offset;
}

/** The matmul kernel for these arguments: the given one, else gemv for few rows, BLAS, tiled. */
export function pickMatmul(blas: boolean, a: OpArgs['matmul']): MatmulKernel {
  if (a.kernel) return a.kernel;
  if (a.a.shape[0] <= GEMV_PICK_ROWS || (!blas && a.a.shape[0] <= GEMV_MAX_ROWS)) return 'gemv';
  return blas ? 'sgmat' : 'tiled';
}

/** The addon kernel that runs a matmul of `rows` rows picked as `kernel` (gemv_mma is WebGPU's: the gemv kernel up to its rows). */
function addonKernel(blas: boolean, kernel: MatmulKernel, rows: number): 'matmul_gemv' | 'matmul_tiled' | 'blas' {
  if (GEMV_KERNELS.includes(kernel) && rows <= GEMV_MAX_ROWS) return 'matmul_gemv';
  return kernel === 'tiled' || !blas ? 'matmul_tiled' : 'blas';
}

/** Backend limits beyond the shared shape rules (checkOp has passed). */
export function supportsOp<K extends OpName>(blas: boolean, blasError: string, name: K, args: OpArgs[K]): Support {
  const a = args as any;
  if (name === 'matmul') {
    const m = a.a.shape[0];
    const kernel = pickMatmul(blas, a);
    const most = kernel === 'gemv_mma' ? GEMV_MMA_MAX_ROWS : GEMV_MAX_ROWS;
    if (GEMV_KERNELS.includes(kernel) && m > most) return no(`matmul: ${kernel} takes at most ${most} rows, got ${m}`);
    if (kernel === 'sgmat' && !blas) return no(`matmul: sgmat runs on the tensor cores through the vendor BLAS, which is not loaded: ${blasError}`);
    const runs = addonKernel(blas, kernel, m);
    if (a.a.dtype !== 'f32' && runs !== 'blas') return no(`matmul: 16-bit activations go to the vendor BLAS only, and these arguments pick ${runs}`);
  }
  if (a.keyCache && poolParts(a.keyCache).length > 1) return no(`${name}: a KV pool in ${poolParts(a.keyCache).length} parts (this backend keeps each pool in one allocation)`);
  if (name === 'paged_attention' || name === 'prefill_attention') {
    const [, , kvh, hs] = one(a.keyCache).shape;
    if (hs > MAX_HEAD_SIZE) return no(`${name}: head size ${hs} is over the kernels' limit of ${MAX_HEAD_SIZE}`);
    if (sameMemory(a.q, a.out)) return no(`${name}: out must not alias q`);
    const numHeads = a.q.shape[1] / hs;
    if (kvh * (numHeads / kvh) > MAX_GRID_YZ) return no(`${name}: ${numHeads} heads are more than one launch takes`);
    if (name === 'paged_attention') {
      if (a.q.shape[0] > MAX_GRID_YZ) return no(`paged_attention: at most ${MAX_GRID_YZ} sequences per launch, got ${a.q.shape[0]}`);
    }
  }
  return OK;
}

const dt = (t: Tensor): number => DTYPE_CODE[t.dtype as keyof typeof DTYPE_CODE] ?? 0;

/** Enqueues op `name` (supports() has passed). */
export function runOp<K extends OpName>(c: PlanContext, name: K, args: OpArgs[K]): void {
  const L = c.launcher;
  const p = (t: Tensor | undefined) => (t ? c.ptr(t) : 0);
  const a = args as any;
  switch (name) {
    case 'embedding': {
      const { ids, table, out } = a as OpArgs['embedding'];
      L.launch('embedding', { ids: p(ids), table: p(table), out: p(out), n: ids.shape[0], hidden: table.shape[1], vocab: table.shape[0], dtype: dt(table) });
      return;
    }
    case 'rms_norm': {
      const { x, weight, out, residual, eps } = a as OpArgs['rms_norm'];
      L.launch('rms_norm', { x: p(x), weight: p(weight), out: p(out), residual: p(residual), n: x.shape[0], hidden: x.shape[1], dtype: dt(weight), out_dtype: dt(out), eps });
      return;
    }
    case 'rope': {
      const { x, positions, cosSin, numHeads, headSize, interleaved } = a as OpArgs['rope'];
      const [maxPos, rot] = cosSin.shape;
      L.launch('rope', {
        x: p(x),
        positions: p(positions),
        cos_sin: p(cosSin),
        n: x.shape[0],
        width: x.shape[1],
        num_heads: numHeads,
        head_size: headSize,
        half_rot: rot / 2,
        max_pos: maxPos,
        interleaved: interleaved ? 1 : 0,
      });
      return;
    }
    case 'silu_and_mul': {
      const { x, out } = a as OpArgs['silu_and_mul'];
      L.launch('silu_and_mul', { x: p(x), out: p(out), n: out.shape[0], inter: out.shape[1], out_dtype: dt(out) });
      return;
    }
    case 'matmul': {
      const m = a as OpArgs['matmul'];
      const kernel = pickMatmul(c.blas, m);
      const [rows, k] = m.a.shape;
      const base = { a: p(m.a), w: p(m.w), bias: p(m.bias), out: p(m.out), m: rows, n: m.w.shape[0], k, dtype: dt(m.w) };
      const which = addonKernel(c.blas, kernel, rows);
      if (which !== 'blas') L.launch(which, base);
      // f32 activations by 16-bit weights are cast into a scratch first; 16-bit ones go as they are
      else L.launch('matmul_blas', { ...base, a_dtype: dt(m.a), a16: m.w.dtype === 'f32' || m.a.dtype !== 'f32' ? 0 : c.scratch('matmul.a16', byteSize([rows, k], 'f16')) });
      return;
    }
    case 'softmax': {
      const { x, out } = a as OpArgs['softmax'];
      L.launch('softmax', { x: p(x), out: p(out), n: x.shape[0], v: x.shape[1] });
      return;
    }
    case 'argmax': {
      const { x, out } = a as OpArgs['argmax'];
      L.launch('argmax', { x: p(x), out: p(out), n: x.shape[0], v: x.shape[1] });
      return;
    }
    case 'sample': {
      const s = a as OpArgs['sample'];
      const [n, v] = s.logits.shape;
      L.launch('sample', { logits: p(s.logits), temperature: p(s.temperature), top_k: p(s.topK), top_p: p(s.topP), min_p: p(s.minP), draws: p(s.draws), out: p(s.out), n, v });
      return;
    }
    case 'apply_penalties': {
      const s = a as OpArgs['apply_penalties'];
      const [n, v] = s.logits.shape;
      L.launch('apply_penalties', {
        logits: p(s.logits),
        prompt_ids: p(s.promptIds),
        output_ids: p(s.outputIds),
        banned_ids: p(s.bannedIds),
        repetition: p(s.repetition),
        frequency: p(s.frequency),
        presence: p(s.presence),
        // [n, v] u32 words, zero between calls (the kernel's second pass clears what it set)
        counts: c.scratch('apply_penalties.counts', n * v * 4, true),
        n,
        v,
        max_prompt: s.promptIds.shape[1],
        max_out: s.outputIds.shape[1],
        max_banned: s.bannedIds.shape[1],
      });
      return;
    }
    case 'logprobs': {
      const s = a as OpArgs['logprobs'];
      const [n, v] = s.logits.shape;
      L.launch('logprobs', {
        logits: p(s.logits),
        ids: p(s.ids),
        out_logprob: p(s.outLogprob),
        out_top_ids: s.topN ? p(s.outTopIds) : 0,
        out_top_logprobs: s.topN ? p(s.outTopLogprobs) : 0,
        n,
        v,
        top_n: s.topN,
      });
      return;
    }
    case 'resolve_tokens': {
      const { ids, sampled } = a as OpArgs['resolve_tokens'];
      L.launch('resolve_tokens', { ids: p(ids), sampled: p(sampled), n: numel(ids.shape), m: sampled.shape[0] });
      return;
    }
    case 'copy': {
      const { x, out } = a as OpArgs['copy'];
      L.launch('copy', { x: p(x), out: p(out), n: x.shape[0] });
      return;
    }
    case 'reshape_and_cache': {
      const s = a as OpArgs['reshape_and_cache'];
      const [numBlocks, blockSize, kvh, hs] = one(s.keyCache).shape;
      L.launch('reshape_and_cache', {
        key: p(s.key),
        value: p(s.value),
        key_cache: p(one(s.keyCache)),
        value_cache: p(one(s.valueCache)),
        slot_mapping: p(s.slotMapping),
        n: s.slotMapping.shape[0],
        width: kvh * hs,
        dtype: dt(one(s.keyCache)),
        num_slots: numBlocks * blockSize,
      });
      return;
    }
    case 'qkv_rope_cache': {
      const s = a as OpArgs['qkv_rope_cache'];
      const [numBlocks, blockSize] = one(s.keyCache).shape;
      const [maxPos, rot] = s.cosSin.shape;
      L.launch('qkv_rope_cache', {
        qkv: p(s.qkv),
        positions: p(s.positions),
        cos_sin: p(s.cosSin),
        q: p(s.q),
        key_cache: p(one(s.keyCache)),
        value_cache: p(one(s.valueCache)),
        slot_mapping: p(s.slotMapping),
        n: s.slotMapping.shape[0],
        num_heads: s.numHeads,
        num_kv_heads: s.numKvHeads,
        head_size: s.headSize,
        half_rot: rot / 2,
        max_pos: maxPos,
        dtype: dt(one(s.keyCache)),
        num_slots: numBlocks * blockSize,
      });
      return;
    }
    case 'copy_blocks': {
      const s = a as OpArgs['copy_blocks'];
      const [numBlocks, blockSize, kvh, hs] = one(s.keyCache).shape;
      const blockBytes = byteSize([blockSize, kvh, hs], one(s.keyCache).dtype);
      L.launch('copy_blocks', { key_cache: p(one(s.keyCache)), value_cache: p(one(s.valueCache)), pairs: p(s.pairs), m: s.pairs.shape[0], num_blocks: numBlocks, block_words: blockBytes / 4 });
      return;
    }
    case 'paged_attention':
      planPagedAttention(c, a as OpArgs['paged_attention']);
      return;
    case 'prefill_attention': {
      const s = a as OpArgs['prefill_attention'];
      const [, blockSize, kvh, hs] = one(s.keyCache).shape;
      const [numTokens, width] = s.q.shape;
      L.launch('prefill_attention', {
        q: p(s.q),
        key_cache: p(one(s.keyCache)),
        value_cache: p(one(s.valueCache)),
        block_tables: p(s.blockTables),
        query_starts: p(s.queryStarts),
        context_lens: p(s.contextLens),
        out: p(s.out),
        num_seqs: s.contextLens.shape[0],
        num_tokens: numTokens,
        num_heads: width / hs,
        num_kv_heads: kvh,
        head_size: hs,
        block_size: blockSize,
        max_blocks: s.blockTables.shape[1],
        dtype: dt(one(s.keyCache)),
        scale: s.scale,
      });
      return;
    }
  }
}

/**
 * Decode attention. v1: one block per (sequence, head chunk) walks the whole context. v2: the
 * context is split into partitions of partitionSize tokens, a block each, merged by
 * paged_attention_reduce. The host does not read contextLens (device data), so the partition
 * count comes from the block table's width, which bounds every context; partitions past a
 * sequence's context exit at once and the reduce skips them.
 */
export function planPagedAttention(c: PlanContext, s: OpArgs['paged_attention']): void {
  const [, blockSize, kvh, hs] = one(s.keyCache).shape;
  const [numSeqs, width] = s.q.shape;
  const maxBlocks = s.blockTables.shape[1];
  const bound = maxBlocks * blockSize;
  const numHeads = width / hs;
  const common = {
    q: c.ptr(s.q),
    key_cache: c.ptr(one(s.keyCache)),
    value_cache: c.ptr(one(s.valueCache)),
    block_tables: c.ptr(s.blockTables),
    context_lens: c.ptr(s.contextLens),
    out: c.ptr(s.out),
    num_seqs: numSeqs,
    num_heads: numHeads,
    num_kv_heads: kvh,
    head_size: hs,
    block_size: blockSize,
    max_blocks: maxBlocks,
    dtype: dt(one(s.keyCache)),
    scale: s.scale,
  };
  const explicit = (s.partitionSize ?? 0) > 0;
  // Blocks of (sequence, head) alone fill the GPU at decode batches of 32+ (7B: 32 heads); fewer
  // sequences split their contexts into partitions, halved down to 128 tokens until there are
  // about 2048 blocks
  const heads = numSeqs * numHeads;
  let ps = explicit ? s.partitionSize! : DEFAULT_PARTITION_SIZE;
  if (!explicit) while (ps > 128 && heads * Math.ceil(bound / ps) < 2048) ps /= 2;
  const partitions = Math.max(1, Math.ceil(bound / ps));
  if ((!explicit && bound <= V2_MIN_CONTEXT && heads >= 1024) || partitions === 1) {
    // v1: the kernel writes out itself when there is a single partition
    c.launcher.launch('paged_attention', { ...common, part_out: 0, part_ml: 0, partition_size: Math.max(bound, 1), partitions: 1 });
    return;
  }
  const rows = numSeqs * numHeads * partitions;
  const partOut = c.scratch('paged_attention.out', rows * hs * 4);
  const partMl = c.scratch('paged_attention.ml', rows * 2 * 4);
  c.launcher.launch('paged_attention', { ...common, part_out: partOut, part_ml: partMl, partition_size: ps, partitions });
  c.launcher.launch('paged_attention_reduce', {
    part_out: partOut,
    part_ml: partMl,
    context_lens: common.context_lens,
    out: common.out,
    num_seqs: numSeqs,
    num_heads: numHeads,
    head_size: hs,
    block_size: blockSize,
    max_blocks: maxBlocks,
    partition_size: ps,
    partitions,
  });
}

/** The native backend keeps each KV pool in one allocation (maxPoolParts 1): no bindings to split for. */
function one(p: KvPool): Tensor {
  const parts = poolParts(p);
  if (parts.length !== 1) throw new Error(`native: a KV pool in ${parts.length} parts (this backend takes one)`);
  return parts[0];
}

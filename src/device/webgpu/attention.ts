// Planning of the paged-KV-cache ops for the webgpu backend: reshape_and_cache, qkv_rope_cache,
// copy_blocks, paged_attention (decode; v1, or v2 = context split into partitions plus a merge) and
// prefill_attention. The kernels are shaders/reshape_and_cache.wgsl, qkv_rope_cache.wgsl, copy_blocks.wgsl,
// paged_attention.wgsl (+ _reduce; its fallback paged_attention_tiled.wgsl runs the tile loop
// _tile that prefill_attention.wgsl shares), prefill_attention_flash.wgsl (prefill's flash kernel,
// with prefill_attention.wgsl as its fallback; PARALLM_WGSL_PREFILL picks for A/B runs).
//
// A binding holds at most 128 MiB on llvmpipe, 2 GiB - 4 on NVIDIA's Vulkan, so a layer's pool
// may come in parts (src/device/kv-pool.ts). Every kernel binds all parts of the K and V pools
// and picks a block's part by a switch: the variants KV_PARTS_2, _3, _4 (at least that many
// parts) add the bindings key_cache_p / value_cache_p (10 + 2(p - 1), 11 + 2(p - 1)) and the
// param part_blocks. One part compiles to the kernels of an unsplit pool: no part bindings,
// params or switches.
// (The other way, a dispatch per part merged like v2's partitions, would add a merge pass and
// scratch to every split step; a switch per loaded pair costs little next to the load.)

import { type Tensor, TensorTooLargeError } from '../device.ts';
import type { DType } from '../dtype.ts';
import { type KvPool, MAX_KV_PARTS, blocksPerPart, poolBlocks, poolParts } from '../kv-pool.ts';
import type { OpArgs, OpName } from '../ops.ts';
import { tensorBytes } from '../tensor.ts';
import type { WebGpuDevice } from './backend.ts';
import { type Dispatch, grid, sameTensor } from './plan.ts';

/** Largest head size the attention kernels take (their tiles live in workgroup memory). */
export const MAX_HEAD_SIZE = 256;
/**
 * Tokens per partition of the tiled decode kernel's v2 when the backend chooses. On an H200, one
 * sequence of 16k tokens ran at 381 GB/s with 256, 237 with 512; 8 x 4k and 64 x 1k alike.
 */
export const DEFAULT_PARTITION_SIZE = 256;
/**
 * The tiled decode kernel uses v2 when the context bound (below) exceeds this many tokens. Untuned: a
 * guess that one workgroup per (sequence, head block) walking more than 2k tokens leaves
 * the GPU idle at small batches; measure on the GPU machine before trusting it.
 */
export const V2_MIN_CONTEXT = 2048;

type CacheOp = 'reshape_and_cache' | 'qkv_rope_cache' | 'copy_blocks' | 'paged_attention' | 'prefill_attention';

/** Storage bindings of the widest cache kernel besides its pools (prefill: q, block_tables, query_starts, context_lens, out). */
const OTHER_BINDINGS = 5;

/** Parts a pool may span on an adapter of `maxStorageBuffers` per shader stage (K and V parts are each a binding). */
export function maxPoolParts(maxStorageBuffers: number): number {
  return Math.max(1, Math.min(MAX_KV_PARTS, Math.floor((maxStorageBuffers - OTHER_BINDINGS) / 2)));
}

/** Launch shape of the tile loop (shaders/paged_attention_tile.wgsl). */
export interface TileShape {
  WG: number;
  HS: number;
  /** query heads per workgroup, all of one kv head */
  HPW: number;
  /** query rows per workgroup (1 for decode) */
  BQ: number;
  /** queries per workgroup: BQ * HPW */
  NQ: number;
  /** keys per tile */
  TK: number;
  /** accumulators per thread: ceil(NQ * HS / WG) */
  NACC: number;
}

/**
 * Workgroup memory of the tile loop, in bytes (paged_attention_tile.wgsl's arrays + a few words;
 * part_sh, which only a split pool's variant declares, is counted always so that one shape fits all).
 */
export function tileBytes(s: Pick<TileShape, 'HS' | 'NQ' | 'TK'>): number {
  const { HS, NQ, TK } = s;
  return 4 * (NQ * HS + TK * (HS + 1) + NQ * TK + 2 * TK + 4 * NQ + 8);
}

/** Largest divisor of `group` not above `cap`: query heads sharing a kv head in one workgroup. */
function headsPerWorkgroup(group: number, cap: number): number {
  for (let h = Math.min(group, cap); h > 1; h--) if (group % h === 0) return h;
  return 1;
}

function workgroupBudget(dev: WebGpuDevice): number {
  return dev.gpu.limits.maxComputeWorkgroupStorageSize;
}

/**
 * Workgroup shape of the tile loop. Small on purpose: the loop is latency-bound, and on an H200
 * (Vulkan) the tiles that filled the workgroup memory (TK = 64, 34 KB, WG = 128) ran decode at
 * 91 GB/s; TK = 16, WG = 256 (~10 KB) at 459 GB/s, and prefill with 4 KiB query tiles and
 * TK = 8 went from ~0.6 to 2.8 TFLOP/s (a sweep over WG 64-512, TK 4-64, 256 sequences of 512
 * tokens and 4 prompts of 1024; 32 query / 8 kv heads of 128, f16 cache). WG = 512 was a little
 * faster still, but 256 is WebGPU's default limit of invocations per workgroup.
 */
const TILE_WG = 256;
const DECODE_TK = 16;
const PREFILL_TK = 8;
const PREFILL_QUERY_BYTES = 4096;

/**
 * The tile shape for head size hs and `group` query heads per kv head, or undefined if none fits
 * the workgroup memory. Up to 8 query heads of one kv head share each K/V tile; prefill adds
 * query rows up to PREFILL_QUERY_BYTES of queries (at least one row).
 */
export function tileShape(budget: number, hs: number, group: number, prefill: boolean): TileShape | undefined {
  const WG = TILE_WG;
  const HPW = headsPerWorkgroup(group, 8);
  const BQ = prefill ? Math.max(1, Math.floor(PREFILL_QUERY_BYTES / (4 * hs) / HPW)) : 1;
  const NQ = BQ * HPW;
  for (let TK = prefill ? PREFILL_TK : DECODE_TK; TK >= 4; TK /= 2) {
    if (tileBytes({ HS: hs, NQ, TK }) <= budget) return { WG, HS: hs, HPW, BQ, NQ, TK, NACC: Math.ceil((NQ * hs) / WG) };
  }
  return undefined;
}

/**
 * The tensors, flags and params of a K/V pool pair: key_cache and value_cache (part 0), the
 * parts after it as key_cache_p / value_cache_p, and part_blocks where there are several.
 */
function pools(keyCache: KvPool, valueCache: KvPool): { tensors: Record<string, Tensor>; flags: string[]; partBlocks: number } {
  const ks = poolParts(keyCache);
  const vs = poolParts(valueCache);
  const tensors: Record<string, Tensor> = { key_cache: ks[0], value_cache: vs[0] };
  const flags = ks[0].dtype === 'f16' ? ['KV_F16'] : [];
  for (let p = 1; p < ks.length; p++) {
    tensors[`key_cache_${p}`] = ks[p];
    tensors[`value_cache_${p}`] = vs[p];
    flags.push(`KV_PARTS_${p + 1}`);
  }
  return { tensors, flags, partBlocks: blocksPerPart(keyCache) };
}

/** Why the webgpu kernels cannot run this cache op, or undefined (checkOp has passed). */
export function attentionUnsupported(dev: WebGpuDevice, name: OpName, args: any): string | undefined {
  if (name !== 'reshape_and_cache' && name !== 'qkv_rope_cache' && name !== 'copy_blocks' && name !== 'paged_attention' && name !== 'prefill_attention') return undefined;
  const parts = poolParts(args.keyCache).length;
  if (parts > dev.info.maxPoolParts) return `${name}: a KV pool of ${parts} parts is more than this adapter binds in one kernel (${dev.info.maxPoolParts} parts)`;
  // reshape_and_cache, qkv_rope_cache and copy_blocks take every shape that checkOp lets through
  if (name !== 'paged_attention' && name !== 'prefill_attention') return undefined;
  const [, , kvh, hs] = poolParts(args.keyCache)[0].shape;
  const a = args as OpArgs['paged_attention'] | OpArgs['prefill_attention'];
  if (hs > MAX_HEAD_SIZE) return `${name}: head size ${hs} is over the kernels' limit of ${MAX_HEAD_SIZE}`;
  if (sameTensor(a.q, a.out)) return `${name}: out must not alias q`;
  const group = a.q.shape[1] / hs / kvh;
  const fits = (name === 'prefill_attention' && prefillKernel(dev, hs) === 'flash') || tileShape(workgroupBudget(dev), hs, group, name === 'prefill_attention') || (name === 'paged_attention' && decodeShape(workgroupBudget(dev), hs, group));
  if (!fits) return `${name}: head size ${hs} does not fit this adapter's workgroup memory`;
  return undefined;
}

/** Each part of a pool is one binding: a clear error where one is over the binding limit. */
function checkPool(dev: WebGpuDevice, op: CacheOp, keyCache: KvPool): void {
  for (const part of poolParts(keyCache)) {
    const bytes = tensorBytes(part);
    if (bytes > dev.info.maxBindingBytes) {
      throw new TensorTooLargeError(
        `${op}: the KV cache part [${part.shape}] ${part.dtype} is ${bytes} bytes, over this adapter's binding limit of ` +
          `${dev.info.maxBindingBytes} bytes; split the pool into more parts (KvCache does so by the binding limit), or use fewer blocks`,
      );
    }
  }
}

export function planReshapeAndCache(dev: WebGpuDevice, a: OpArgs['reshape_and_cache']): Dispatch[] {
  checkPool(dev, 'reshape_and_cache', a.keyCache);
  const [, blockSize, kvh, hs] = poolParts(a.keyCache)[0].shape;
  const n = a.slotMapping.shape[0];
  if (n === 0) return [];
  const pool = pools(a.keyCache, a.valueCache);
  const tensors = { key: a.key, value: a.value, ...pool.tensors, slot_mapping: a.slotMapping };
  const params = { n, half_width: (kvh * hs) / 2, num_slots: poolBlocks(a.keyCache) * blockSize, part_slots: pool.partBlocks * blockSize };
  return [{ file: 'reshape_and_cache.wgsl', flags: pool.flags, overrides: {}, tensors, params, grid: grid(n) }];
}

/**
 * Rotary embedding of q and k, q out, k and v into the cache: one thread per 4 elements of a
 * qkv row where head size and half the rotary dim are multiples of 4 (VEC4), else per 2; each
 * token's row spread over enough workgroups of 256 that a decode step of one token has several.
 */
export function planQkvRopeCache(dev: WebGpuDevice, a: OpArgs['qkv_rope_cache']): Dispatch[] {
  checkPool(dev, 'qkv_rope_cache', a.keyCache);
  const [, blockSize, kvh, hs] = poolParts(a.keyCache)[0].shape;
  const [n, width] = a.qkv.shape;
  const [maxPos, rot] = a.cosSin.shape;
  if (n === 0) return [];
  const vec4 = hs % 4 === 0 && (rot / 2) % 4 === 0;
  const vec = vec4 ? 4 : 2;
  const WG = 256;
  const units = width / vec;
  const chunks = Math.ceil(units / WG);
  const pool = pools(a.keyCache, a.valueCache);
  const tensors = { qkv: a.qkv, positions: a.positions, cos_sin: a.cosSin, slot_mapping: a.slotMapping, q: a.q, ...pool.tensors };
  const params = {
    n,
    units,
    q_units: (a.numHeads * hs) / vec,
    kv_units: (kvh * hs) / vec,
    head_size: hs,
    rot_heads: a.numHeads + kvh,
    half_rot: rot / 2,
    max_pos: maxPos,
    num_slots: poolBlocks(a.keyCache) * blockSize,
    chunks,
    part_slots: pool.partBlocks * blockSize,
  };
  return [{ file: 'qkv_rope_cache.wgsl', flags: [...pool.flags, ...(vec4 ? ['VEC4'] : [])], overrides: { WG }, tensors, params, grid: grid(n * chunks) }];
}

/** Copy-on-write: one workgroup per (src, dst) pair, the pair's blocks in whichever parts they lie. */
export function planCopyBlocks(dev: WebGpuDevice, a: OpArgs['copy_blocks']): Dispatch[] {
  checkPool(dev, 'copy_blocks', a.keyCache);
  const m = a.pairs.shape[0];
  const part0 = poolParts(a.keyCache)[0];
  const blockWords = tensorBytes(part0) / part0.shape[0] / 4;
  // copy_blocks reads the caches as u32 words whatever their dtype
  const { tensors, flags, partBlocks } = pools(a.keyCache, a.valueCache);
  return [
    {
      file: 'copy_blocks.wgsl',
      flags: flags.filter((f) => f !== 'KV_F16'),
      overrides: {},
      tensors: { ...tensors, pairs: a.pairs },
      params: { m, block_words: blockWords, part_blocks: partBlocks },
      grid: grid(Math.max(1, m)),
    },
  ];
}

/** Launch shape of paged_attention.wgsl (see its header). */
export interface DecodeShape {
  WG: number;
  /** head size: 8 x a power of two, HS / 8 <= WG */
  HS: number;
  /** query heads per workgroup, all of one kv head: a power of two up to 8 */
  NQ: number;
  /** key rows in flight per lane */
  KPL: number;
  /** most keys of a partition (the score array holds NQ x PK) */
  PK: number;
}

/** Workgroup memory of paged_attention.wgsl in bytes: its arrays (score_sh, row_sh, scratch, ml_sh, ctx_sh). */
export function decodeBytes(s: DecodeShape): number {
  const { WG, HS, NQ, KPL, PK } = s;
  const LPK = HS / 8;
  const RB = (WG / LPK) * KPL * NQ * (LPK + 1);
  return 4 * (NQ * PK + PK + Math.max(2 * RB, 8 * WG) + 2 * NQ + 1);
}

const DECODE_WG = 256;
/** Scores a decode workgroup holds (NQ x PK), 8 KiB: partitions of up to 2048 keys for one head. */
const DECODE_SCORES = 2048;
/**
 * Workgroups a decode launch should have before the planner stops splitting contexts into
 * more partitions. Untuned: about four resident workgroups on each of an H200's 132 SMs.
 */
export const DECODE_FILL = 512;
/**
 * The longest context a filled decode launch walks in one partition when the planner chooses;
 * longer ones split into partitions of this many keys. On an H200 (bench/lab.ts attn,
 * 2026-11-26) 64 and 128 sequences x 1024 keys ran at 4.2-4.3 TB/s in partitions of 256 and
 * 3.8-3.9 TB/s in one partition of 1024.
 */
export const DECODE_V1_MAX = 256;
/** The shortest partition the planner splits a context into when it chooses (keys). */
export const MIN_PARTITION = 128;

const pow2 = (x: number) => x > 0 && (x & (x - 1)) === 0;
const nextPow2 = (x: number) => 2 ** Math.ceil(Math.log2(Math.max(1, x)));

/**
 * paged_attention.wgsl's shape for head size hs and `group` query heads per kv head, with PK the
 * longest partition it can take, or undefined where it does not apply (head sizes other than 8
 * x a power of two up to 256, or no fit in the workgroup memory): the tiled kernel then runs.
 * Up to 8 query heads of a group share each K/V read; KPL x NQ is kept near 8 (the partials of
 * a round grow with both).
 */
export function decodeShape(budget: number, hs: number, group: number): DecodeShape | undefined {
  const WG = DECODE_WG;
  if (hs % 8 || !pow2(hs / 8) || hs / 8 > WG) return undefined;
  let NQ = 1;
  while (NQ < 8 && group % (2 * NQ) === 0) NQ *= 2;
  for (let KPL = Math.max(1, Math.min(4, 8 / NQ)); KPL >= 1; KPL /= 2) {
    for (let PK = DECODE_SCORES / NQ; PK >= 64; PK /= 2) {
      const s = { WG, HS: hs, NQ, KPL, PK };
      if (decodeBytes(s) <= budget) return s;
    }
  }
  return undefined;
}

/** paged_attention_reduce.wgsl over the partial results of a v2 launch. */
function reduceDispatch(a: OpArgs['paged_attention'], partOut: Tensor, partMl: Tensor, numSeqs: number, numHeads: number, hs: number, ps: number, partitions: number, bound: number): Dispatch {
  const WG = 64;
  return {
    file: 'paged_attention_reduce.wgsl',
    flags: [],
    overrides: { WG, HS: hs, NACC: Math.ceil(hs / WG) },
    tensors: { part_out: partOut, part_ml: partMl, context_lens: a.contextLens, out: a.out },
    params: { num_seqs: numSeqs, num_heads: numHeads, partition_size: ps, partitions, max_context: bound },
    grid: grid(numSeqs * numHeads),
  };
}

/**
 * Decode. One workgroup per (sequence, NQ query heads of a kv head, partition of the context);
 * v1 is one partition (the workgroup writes out), v2 several, merged by a second kernel.
 *
 * The planner cannot read contextLens (device data), so it plans for the bound of every
 * context that the block table gives, maxBlocksPerSeq * blockSize; partitions past a
 * sequence's context exit at once and are skipped by the merge. A given partitionSize (> 0)
 * is taken up to the kernel's PK (results are the same, up to rounding, for any split).
 * Otherwise v1 runs where the bound fits one partition and the sequences x head blocks make
 * DECODE_FILL workgroups; else partitions halve from PK down to MIN_PARTITION until they do.
 * Head sizes paged_attention.wgsl does not take run the tiled kernel (planTiledDecode).
 */
export function planPagedAttention(dev: WebGpuDevice, a: OpArgs['paged_attention']): Dispatch[] {
  checkPool(dev, 'paged_attention', a.keyCache);
  const [, blockSize, kvh, hs] = poolParts(a.keyCache)[0].shape;
  const [numSeqs, width] = a.q.shape;
  const numHeads = width / hs;
  const maxBlocks = a.blockTables.shape[1];
  if (numSeqs === 0) return [];
  const shape = decodeShape(workgroupBudget(dev), hs, numHeads / kvh);
  if (!shape) return planTiledDecode(dev, a);
  const { WG, HS, NQ, KPL, PK: pkMax } = shape;
  const bound = maxBlocks * blockSize;
  const units = numSeqs * (numHeads / NQ);

  let ps: number;
  if ((a.partitionSize ?? 0) > 0) ps = Math.min(a.partitionSize!, pkMax);
  else if (bound <= DECODE_V1_MAX && units >= DECODE_FILL) ps = bound;
  else {
    ps = Math.min(pkMax, DECODE_V1_MAX, nextPow2(bound));
    while (ps > MIN_PARTITION && units * Math.ceil(bound / ps) < DECODE_FILL) ps /= 2;
  }
  const partitions = Math.max(1, Math.ceil(bound / ps));
  if (partitions > 1 && numSeqs * numHeads * partitions * hs * 4 > dev.info.maxBindingBytes) return planTiledDecode(dev, a);
  const PK = Math.min(pkMax, Math.max(64, nextPow2(partitions === 1 ? bound : ps)));
  const overrides = { WG, HS, NQ, KPL, PK };
  const pool = pools(a.keyCache, a.valueCache);
  const common = { num_seqs: numSeqs, num_heads: numHeads, num_kv_heads: kvh, block_size: blockSize, max_blocks: maxBlocks, scale: a.scale, part_blocks: pool.partBlocks };
  const tensors = { q: a.q, ...pool.tensors, block_tables: a.blockTables, context_lens: a.contextLens };
  const grid1 = (p: number) => grid(units * p);
  if (partitions === 1) {
    const params = { ...common, partition_size: Math.max(bound, 1), partitions: 1 };
    return [{ file: 'paged_attention.wgsl', flags: pool.flags, overrides, tensors: { ...tensors, out: a.out }, params, grid: grid1(1) }];
  }
  const partOut = dev.scratch('paged_attention.out', [numSeqs, numHeads, partitions, hs], 'f32');
  const partMl = dev.scratch('paged_attention.ml', [numSeqs, numHeads, partitions, 2], 'f32');
  return [
    {
      file: 'paged_attention.wgsl',
      flags: [...pool.flags, 'PARTITIONED'],
      overrides,
      tensors: { ...tensors, part_out: partOut, part_ml: partMl },
      params: { ...common, partition_size: ps, partitions },
      grid: grid1(partitions),
    },
    reduceDispatch(a, partOut, partMl, numSeqs, numHeads, hs, ps, partitions, bound),
  ];
}

/**
 * Decode by the tiled kernel (paged_attention_tiled.wgsl), for the head sizes that
 * paged_attention.wgsl does not take. v1: one workgroup per (sequence, head block) walks the
 * whole context. v2: the context is split into partitions of partitionSize tokens, one workgroup each, merged by a second kernel.
 *
 * The planner cannot read contextLens (device data), so the partition count comes from the block
 * table: maxBlocksPerSeq * blockSize bounds every context, partitions = ceil(bound /
 * partitionSize). Partitions past a sequence's context exit at once and are skipped by the merge.
 * v2 runs when partitionSize is given (> 0) or when the bound exceeds V2_MIN_CONTEXT; where its
 * scratch would pass the binding limit, a chosen partition size doubles until it fits.
 */
export function planTiledDecode(dev: WebGpuDevice, a: OpArgs['paged_attention']): Dispatch[] {
  const [, blockSize, kvh, hs] = poolParts(a.keyCache)[0].shape;
  const [numSeqs, width] = a.q.shape;
  const numHeads = width / hs;
  const maxBlocks = a.blockTables.shape[1];
  if (numSeqs === 0) return [];
  const shape = tileShape(workgroupBudget(dev), hs, numHeads / kvh, false)!;
  const { WG, HS, NQ, TK, NACC } = shape;
  const overrides = { WG, HS, NQ, TK, NACC };
  const bound = maxBlocks * blockSize;
  const headBlocks = numHeads / NQ;
  const pool = pools(a.keyCache, a.valueCache);
  const common = { num_seqs: numSeqs, num_heads: numHeads, num_kv_heads: kvh, block_size: blockSize, max_blocks: maxBlocks, scale: a.scale, tile_keys: TK, part_blocks: pool.partBlocks };
  const tensors = { q: a.q, ...pool.tensors, block_tables: a.blockTables, context_lens: a.contextLens };
  const flags = pool.flags;

  const explicit = (a.partitionSize ?? 0) > 0;
  if (!explicit && bound <= V2_MIN_CONTEXT) {
    const params = { ...common, partition_size: Math.max(bound, 1), partitions: 1 };
    return [{ file: 'paged_attention_tiled.wgsl', flags, overrides, tensors: { ...tensors, out: a.out }, params, grid: grid(numSeqs * headBlocks) }];
  }

  let ps = explicit ? a.partitionSize! : DEFAULT_PARTITION_SIZE;
  const scratchBytes = (p: number) => numSeqs * numHeads * Math.max(1, Math.ceil(bound / p)) * hs * 4;
  while (!explicit && scratchBytes(ps) > dev.info.maxBindingBytes && ps < bound) ps *= 2;
  if (scratchBytes(ps) > dev.info.maxBindingBytes) {
    throw new TensorTooLargeError(
      `paged_attention: the partial outputs of ${numSeqs} sequences x ${numHeads} heads in partitions of ${ps} tokens (${scratchBytes(ps)} bytes) ` +
        `are over the binding limit of ${dev.info.maxBindingBytes} bytes; use a larger partitionSize or fewer sequences per step`,
    );
  }
  const partitions = Math.max(1, Math.ceil(bound / ps));
  const partOut = dev.scratch('paged_attention.out', [numSeqs, numHeads, partitions, hs], 'f32');
  const partMl = dev.scratch('paged_attention.ml', [numSeqs, numHeads, partitions, 2], 'f32');
  return [
    {
      file: 'paged_attention_tiled.wgsl',
      flags: [...flags, 'PARTITIONED'],
      overrides,
      tensors: { ...tensors, part_out: partOut, part_ml: partMl },
      params: { ...common, partition_size: ps, partitions },
      grid: grid(numSeqs * headBlocks * partitions),
    },
    reduceDispatch(a, partOut, partMl, numSeqs, numHeads, hs, ps, partitions, bound),
  ];
}

/**
 * The prefill kernel that PARALLM_WGSL_PREFILL names (read once): `mma` (the default)
 * prefill_attention_mma.wgsl on the matrix units where it applies (prefillMmaApplies), else as
 * `flash`; `flash` prefill_attention_flash.wgsl wherever its shape fits, else the tile loop;
 * `tile` the tile loop (prefill_attention.wgsl) always, for an A/B on the GPU; `flash:BQxTK`
 * (e.g. flash:16x64) the flash kernel with that tile where it fits (a shape sweep on the GPU),
 * else as `flash`.
 */
export type PrefillChoice = 'mma' | 'flash' | 'tile' | `flash:${number}x${number}`;
const PREFILL_CHOICE: PrefillChoice = prefillChoice(process.env.PARALLM_WGSL_PREFILL);

export function prefillChoice(v: string | undefined): PrefillChoice {
  if (v === undefined || v === '' || v === 'mma' || v === 'flash' || v === 'tile') return (v || 'mma') as PrefillChoice;
  const m = /^flash:(\d+)x(\d+)$/.exec(v);
  if (m && [16, 32, 64].includes(+m[1]) && [16, 32, 64, 128].includes(+m[2])) return v as PrefillChoice;
  throw new Error(`PARALLM_WGSL_PREFILL=${v}: expected mma, flash, tile or flash:BQxTK (BQ 16, 32 or 64; TK 16, 32, 64 or 128)`);
}

/** Query rows of a prefill_attention_mma.wgsl workgroup (four subgroups of 16). */
export const MMA_PREFILL_ROWS = 64;
/** Workgroup memory of prefill_attention_mma.wgsl: K/V (and Q) tile, scores, P, cache rows and parts, rows' 1 / l, the tile search. */
export const MMA_PREFILL_BYTES = 64 * 136 * 2 + 64 * 68 * 4 + 64 * 72 * 2 + 3 * 64 * 4 + 128 * 4 + 20;

/**
 * Whether prefill_attention_mma.wgsl runs this prefill: subgroup matrices on the adapter, head
 * size 128, an f16 cache, and the workgroup memory it needs.
 */
export function prefillMmaApplies(dev: WebGpuDevice, hs: number, kvDtype: DType): boolean {
  return dev.info.features.subgroupMatrix && hs === 128 && kvDtype === 'f16' && workgroupBudget(dev) >= MMA_PREFILL_BYTES;
}

/** Launch shape of prefill_attention_flash.wgsl: WG = 8 * BQ threads, BQ query rows of one head, TK keys per tile. */
export interface FlashShape {
  WG: number;
  HS: number;
  BQ: number;
  TK: number;
}

/** Workgroup memory of prefill_attention_flash.wgsl in bytes (q_sh, kv_sh, p_sh, red_sh, scan_sh, row_sh, part_sh + a few words). */
export function flashBytes(s: Pick<FlashShape, 'HS' | 'BQ' | 'TK'>): number {
  const { HS, BQ, TK } = s;
  return 4 * (BQ * HS + TK * (HS + 4) + BQ * (TK + 1) + BQ * 16 + 8 * BQ + 2 * TK + 8);
}

/**
 * (BQ, TK) of the flash kernel, largest first: native's CUDA-core kernel runs 32 x 64. With f32
 * tiles, 32 x 64 at head size 128 needs ~61 KB; on 48 KB it gets 32 x 32, and head size 64 32 x
 * 64. llvmpipe (32 KiB) runs 16 x 32 at 128 and 32 x 32 at 64.
 */
const FLASH_SHAPES: [number, number][] = [
  [32, 64],
  [32, 32],
  [16, 64],
  [16, 32],
  [16, 16],
];

/**
 * The flash kernel's shape for head size hs (64 or 128), or undefined where it does not apply or
 * fit: the first of FLASH_SHAPES that fits, or `want` (BQ, TK) where given and it fits.
 */
export function flashShape(budget: number, hs: number, maxInvocations = 256, want?: [number, number]): FlashShape | undefined {
  if (hs !== 64 && hs !== 128) return undefined;
  for (const [BQ, TK] of want ? [want, ...FLASH_SHAPES] : FLASH_SHAPES) {
    if (8 * BQ <= maxInvocations && flashBytes({ HS: hs, BQ, TK }) <= budget) return { WG: 8 * BQ, HS: hs, BQ, TK };
  }
  return undefined;
}

/** The flash shape for head size hs on this adapter under `choice`, or undefined where the tile loop runs. */
export function prefillFlashShape(dev: WebGpuDevice, hs: number, choice: PrefillChoice = PREFILL_CHOICE): FlashShape | undefined {
  if (choice === 'tile') return undefined;
  const m = /^flash:(\d+)x(\d+)$/.exec(choice);
  const lim = dev.gpu.limits;
  return flashShape(workgroupBudget(dev), hs, Math.min(lim.maxComputeInvocationsPerWorkgroup, lim.maxComputeWorkgroupSizeX), m ? [+m[1], +m[2]] : undefined);
}

/**
 * The flash kernel gives each sequence whole tiles of BQ query rows: a step that mixes decodes
 * (one row each) with prompt chunks wastes most of them. On an H100 (b5f5281) flash ran a step of
 * 8 prompts x 256 tokens 2.1x faster than the tile loop (1.8 vs 0.87 TFLOP/s), yet the 7B
 * throughput run, whose prefill steps carry ~250 decodes beside ~1,800 prompt tokens, went 4,714
 * -> 4,453 tokens/s with it. So by default flash runs only where the mean query length reaches
 * half a tile; the rest keep the tile loop (PARALLM_WGSL_PREFILL, when set, applies everywhere).
 */
const FLASH_MIN_MEAN_QUERY = 16;
const PREFILL_FORCED = process.env.PARALLM_WGSL_PREFILL !== undefined && process.env.PARALLM_WGSL_PREFILL !== '';

/**
 * The kernel planPrefillAttention runs for head size hs and cache type kvDtype on this adapter
 * (PARALLM_WGSL_PREFILL, then fit), where the chunks are long enough for tiles of query rows.
 */
export function prefillKernel(dev: WebGpuDevice, hs: number, choice: PrefillChoice = PREFILL_CHOICE, kvDtype: DType = 'f16'): 'mma' | 'flash' | 'tile' {
  if (choice === 'mma' && prefillMmaApplies(dev, hs, kvDtype)) return 'mma';
  return prefillFlashShape(dev, hs, choice) ? 'flash' : 'tile';
}

/**
 * Prefill by a kernel that takes one workgroup per (query tile of BQ rows, query head):
 * prefill_attention_flash.wgsl and prefill_attention_mma.wgsl (lib/query_tile.wgsl). The grid is
 * an upper bound of the query tiles, floor((numTokens + numSeqs * (BQ - 1)) / BQ), times
 * numHeads (the kernels take the tiles last to first).
 */
function planQueryTiles(a: OpArgs['prefill_attention'], file: string, hs: number, BQ: number, overrides: Record<string, number>, extra: Record<string, number> = {}): Dispatch[] {
  const [, blockSize, kvh] = poolParts(a.keyCache)[0].shape;
  const [numTokens, width] = a.q.shape;
  const numHeads = width / hs;
  const numSeqs = a.contextLens.shape[0];
  const tiles = Math.floor((numTokens + numSeqs * (BQ - 1)) / BQ);
  if (tiles === 0) return [];
  const pool = pools(a.keyCache, a.valueCache);
  const tensors = { q: a.q, ...pool.tensors, block_tables: a.blockTables, query_starts: a.queryStarts, context_lens: a.contextLens, out: a.out };
  const params = { num_seqs: numSeqs, num_heads: numHeads, num_kv_heads: kvh, block_size: blockSize, max_blocks: a.blockTables.shape[1], scale: a.scale, tiles, part_blocks: pool.partBlocks, ...extra };
  return [{ file, flags: pool.flags, overrides, tensors, params, grid: grid(tiles * numHeads) }];
}

/**
 * Prefill: the flash kernel where it applies (prefillKernel), else the tile loop below.
 * Tile loop: workgroups of BQ query rows x HPW heads. Per-sequence lengths live on the device, so
 * the grid is an upper bound of the query tiles, floor((numTokens + numSeqs * (BQ - 1)) / BQ)
 * per head block; the kernel maps each workgroup to its (sequence, tile) and spare ones exit.
 */
export function planPrefillAttention(dev: WebGpuDevice, a: OpArgs['prefill_attention']): Dispatch[] {
  checkPool(dev, 'prefill_attention', a.keyCache);
  const [, blockSize, kvh, hs] = poolParts(a.keyCache)[0].shape;
  const [numTokens, width] = a.q.shape;
  const numHeads = width / hs;
  const numSeqs = a.contextLens.shape[0];
  const long = PREFILL_FORCED || numTokens >= FLASH_MIN_MEAN_QUERY * numSeqs;
  if (long && prefillKernel(dev, hs, PREFILL_CHOICE, poolParts(a.keyCache)[0].dtype) === 'mma') return planQueryTiles(a, 'prefill_attention_mma.wgsl', hs, MMA_PREFILL_ROWS, {});
  const flash = prefillFlashShape(dev, hs);
  if (flash && long) {
    const { WG, HS, BQ, TK } = flash;
    return planQueryTiles(a, 'prefill_attention_flash.wgsl', HS, BQ, { WG, HS, BQ, TK }, { tile_keys: TK });
  }
  const { WG, HS, HPW, BQ, NQ, TK, NACC } = tileShape(workgroupBudget(dev), hs, numHeads / kvh, true)!;
  const tiles = Math.floor((numTokens + numSeqs * (BQ - 1)) / BQ);
  const pool = pools(a.keyCache, a.valueCache);
  const tensors = {
    q: a.q,
    ...pool.tensors,
    block_tables: a.blockTables,
    query_starts: a.queryStarts,
    context_lens: a.contextLens,
    out: a.out,
  };
  const params = { num_seqs: numSeqs, num_heads: numHeads, num_kv_heads: kvh, block_size: blockSize, max_blocks: a.blockTables.shape[1], scale: a.scale, tile_keys: TK, part_blocks: pool.partBlocks };
  if (tiles === 0) return [];
  return [{ file: 'prefill_attention.wgsl', flags: pool.flags, overrides: { WG, HS, HPW, BQ, NQ, TK, NACC }, tensors, params, grid: grid(tiles * (numHeads / HPW)) }];
}

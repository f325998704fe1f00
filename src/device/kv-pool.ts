// A layer's K or V pool of the paged KV cache, as the cache ops take it: one tensor, or, where
// the pool is larger than one kernel binding can hold, its parts in block order.
//
// Parts: part i is [blocks_i, blockSize, numKvHeads, headSize]; every part but the last holds
// the same number of blocks B, the last at most B. Block b lives in part floor(b / B) at row
// b % B. Kernels bind every part and pick the part per block (shaders/lib/kv_pool.wgsl);
// one part is the plain pool, and its kernels are those of an unsplit pool.

import type { Tensor } from './device.ts';
import { rows } from './tensor.ts';

/** A KV pool: one tensor [numBlocks, blockSize, numKvHeads, headSize], or its parts in block order. */
export type KvPool = Tensor | readonly Tensor[];

/**
 * The most parts a pool may have. A kernel binds every part of the K and the V pool; four of
 * each next to the five other bindings of the widest cache kernel (prefill_attention, and
 * paged_attention v2) make 13, under llvmpipe's 16 storage buffers per stage.
 */
export const MAX_KV_PARTS = 4;

export function poolParts(p: KvPool): readonly Tensor[] {
  return Array.isArray(p) ? p : [p as Tensor];
}

/** Blocks of every part but the last (all of them for one part). */
export function blocksPerPart(p: KvPool): number {
  return poolParts(p)[0].shape[0];
}

/** Blocks in the whole pool. */
export function poolBlocks(p: KvPool): number {
  return poolParts(p).reduce((n, t) => n + t.shape[0], 0);
}

/** Block b of the pool as a view [1, blockSize, numKvHeads, headSize] of its part. */
export function poolBlock(p: KvPool, b: number): Tensor {
  const parts = poolParts(p);
  const per = parts[0].shape[0];
  const part = Math.floor(b / per);
  if (!(b >= 0 && part < parts.length && b - part * per < parts[part].shape[0])) throw new RangeError(`block ${b} is outside a pool of ${poolBlocks(p)} blocks`);
  return rows(parts[part], b - part * per, 1);
}

/**
 * Blocks per part when `numBlocks` blocks of `blockBytes` each are spread over parts of at most
 * `maxPartBytes`: as few parts as that allows, filled evenly (the last may hold fewer).
 */
export function partLayout(numBlocks: number, blockBytes: number, maxPartBytes: number): { parts: number; blocksPerPart: number } {
  const most = Math.floor(maxPartBytes / blockBytes);
  if (most < 1) throw new RangeError(`a KV block of ${blockBytes} bytes is larger than a pool part may be (${maxPartBytes} bytes)`);
  const parts = Math.max(1, Math.ceil(numBlocks / most));
  // with ceil(numBlocks / parts) blocks each, the last part is never left empty
  return { parts, blocksPerPart: Math.max(1, Math.ceil(numBlocks / parts)) };
}

// Paged KV caches for the attention tests: pools whose sequences own shuffled blocks, with
// every slot outside a sequence's context poisoned, and the same pool split into parts.
//
// Caches are [numBlocks, blockSize, numKvHeads, headSize]; each sequence owns a shuffled,
// non-contiguous set of blocks, and every slot outside a sequence's context (the tail of its
// last block, spare blocks, the blocks that unused block-table entries point at) holds NaN: a
// kernel that reads one turns its output into NaN, which relErr reports as Infinity.
// f16 caches are filled from f16-rounded numbers, so the reference sees exactly what the
// kernel reads and the f32 tolerance holds for them too.

import { type DType, type Device, roundTrip } from '../../src/device/index.ts';
import type { WebGpuDevice } from '../../src/device/webgpu/backend.ts';
import { prefillKernel } from '../../src/device/webgpu/attention.ts';
import { type HostTensor, host, normal, relErr } from './harness.ts';

/**
 * Tolerance of prefill_attention against the reference (rowErr). Native prefill with an f16
 * cache at head size 64 or 128 runs on the tensor cores (NVIDIA), and WebGPU's at head size 128
 * on the subgroup matrices where the adapter has them (prefill_attention_mma.wgsl): both take Q
 * and the softmax weights P rounded to f16 (relErr ~6e-4 in native's emulator). Elsewhere f32.
 */
export function prefillTol(dev: Device, dtype: DType, hs: number): number {
  const mma = dev.info.backend === 'native' ? hs === 64 || hs === 128 : dev.info.backend === 'webgpu' && prefillKernel(dev as WebGpuDevice, hs) === 'mma';
  return dtype === 'f16' && mma ? 3e-3 : 1e-5;
}

export interface Layout {
  blockSize: number;
  numKvHeads: number;
  headSize: number;
  dtype: DType;
}

export interface Paged extends Layout {
  numBlocks: number;
  maxBlocks: number;
  tables: Int32Array;
  keyCache: Float64Array;
  valueCache: Float64Array;
}

export function shuffle<T>(r: () => number, xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

/**
 * A pool holding `lens[s]` tokens of each sequence. Block tables are `extra` entries wider than
 * the longest sequence needs; the entries past a sequence's blocks point at NaN-filled spares.
 */
export function pagedCache(r: () => number, l: Layout, lens: number[], extra = 2): Paged {
  const { blockSize, numKvHeads, headSize, dtype } = l;
  const need = lens.map((n) => Math.ceil(n / blockSize));
  const maxBlocks = Math.max(1, ...need) + extra;
  const owned = need.reduce((a, b) => a + b, 0);
  const spares = 3;
  const numBlocks = owned + spares;
  const ids = shuffle(r, Array.from({ length: numBlocks }, (_, i) => i));
  const tables = new Int32Array(lens.length * maxBlocks);
  const row = numKvHeads * headSize;
  const keyCache = new Float64Array(numBlocks * blockSize * row).fill(NaN);
  const valueCache = new Float64Array(numBlocks * blockSize * row).fill(NaN);
  let next = 0;
  for (let s = 0; s < lens.length; s++) {
    for (let b = 0; b < maxBlocks; b++) tables[s * maxBlocks + b] = b < need[s] ? ids[next++] : ids[owned + Math.floor(r() * spares)];
    for (let p = 0; p < lens[s]; p++) {
      const slot = tables[s * maxBlocks + Math.floor(p / blockSize)] * blockSize + (p % blockSize);
      keyCache.set(roundTrip(normal(r, row), dtype), slot * row);
      valueCache.set(roundTrip(normal(r, row), dtype), slot * row);
    }
  }
  return { ...l, numBlocks, maxBlocks, tables, keyCache, valueCache };
}

export function cacheArgs(p: Paged): { keyCache: HostTensor; valueCache: HostTensor; blockTables: HostTensor } {
  const shape = [p.numBlocks, p.blockSize, p.numKvHeads, p.headSize];
  return { keyCache: host(p.keyCache, shape, p.dtype), valueCache: host(p.valueCache, shape, p.dtype), blockTables: host(p.tables, [p.tables.length / p.maxBlocks, p.maxBlocks], 'i32') };
}

/** The worst relErr over rows of `width` (a short sequence's error must not hide in a long one's norm). */
export function rowErr(got: ArrayLike<number>, want: ArrayLike<number>, width: number): number {
  let worst = 0;
  for (let i = 0; i < want.length; i += width) {
    worst = Math.max(worst, relErr(Array.prototype.slice.call(got, i, i + width), Array.prototype.slice.call(want, i, i + width)));
  }
  return worst;
}

/** A pool [numBlocks, ...] as parts of `per` blocks (the last holds the rest), as KvCache splits one. */
export function splitPool(h: HostTensor, per: number): HostTensor[] {
  const [numBlocks, ...row] = h.shape;
  const blockLen = row.reduce((a, b) => a * b, 1);
  const parts: HostTensor[] = [];
  for (let b = 0; b < numBlocks; b += per) {
    const n = Math.min(per, numBlocks - b);
    parts.push(host(Array.prototype.slice.call(h.values, b * blockLen, (b + n) * blockLen), [n, ...row], h.dtype));
  }
  return parts;
}

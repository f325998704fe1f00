// Seeded dummy weights: every tensor of a config filled with small uniform values, generated
// chunk by chunk on the host and uploaded, so a 13 GB model never needs 13 GB of host memory.
// Values come from a 65536-entry table of the tensor's distribution already encoded in its
// dtype, indexed by 16 random bits: one table load an element instead of a float conversion.
// Tensors of more than POOL_FROM elements (a 7B model's every matrix) are not generated one by
// one: each is a window, at a seeded offset, into a pool of POOL_ELEMS random values shared by
// the tensors of its dtype and range, uploaded straight from the pool. Generating 6.7e9 values
// took 21 s of JavaScript on the H200 machine; the pools take well under a second, so a 7B
// benchmark starts at the speed of the uploads.
import type { Device, Tensor } from '../device/device.ts';
import { DTYPE_BYTES, encode, numel } from '../device/dtype.ts';
import type { WeightDType } from '../device/ops.ts';
import { uploadAt } from './reader.ts';
import type { WeightSpec } from './weights.ts';

/** The value range of each kind of tensor: center +- halfWidth. */
export function dummyRange(spec: WeightSpec): { center: number; halfWidth: number } {
  switch (spec.kind) {
    // like PyTorch's Linear init: uniform +-1/sqrt(in_features), so activations keep their scale
    case 'linear':
    case 'embedding':
      return { center: 0, halfWidth: 1 / Math.sqrt(spec.shape[1]) };
    case 'bias':
      return { center: 0, halfWidth: 1 / Math.sqrt(spec.shape[0]) };
    // RMSNorm gains near 1, not exactly 1, so that a test can tell the norms apart
    case 'norm':
      return { center: 1, halfWidth: 0.05 };
  }
}

/** Tensors above this many elements are windows into a shared pool (see the top of the file). */
export const POOL_FROM = 1 << 22;
/** Elements of a pool: larger than every matrix of a 7B model but its embeddings. */
export const POOL_ELEMS = 1 << 25;

/** The pools of one load, by dtype and range: pass one map to every fillDummy of a model. */
export type DummyPools = Map<string, Uint8Array>;

/** Fills t (spec's shape, any weight dtype) with values seeded by (seed, spec.name). */
export async function fillDummy(device: Device, t: Tensor, spec: WeightSpec, seed: number, chunkBytes: number, onBytes?: (n: number) => void, pools?: DummyPools): Promise<void> {
  const n = numel(spec.shape);
  if (pools && n > POOL_FROM) return fillFromPool(device, t, spec, seed, chunkBytes, onBytes, pools);
  const dtype = t.dtype as WeightDType;
  const bytes = DTYPE_BYTES[dtype];
  const { center, halfWidth } = dummyRange(spec);
  const table = valueTable(center, halfWidth, dtype);
  // an even number of elements per chunk: each random u32 gives two elements
  const chunkElems = Math.max(2, Math.floor(chunkBytes / bytes / 2) * 2);
  const buf = new Uint8Array(Math.min(chunkElems, n + (n % 2)) * bytes);
  let state = hash(seed, spec.name);
  for (let start = 0; start < n; start += chunkElems) {
    const count = Math.min(chunkElems, n - start);
    const pairs = (count + 1) >>> 1;
    state = randomFill(buf, bytes, table, pairs, state);
    uploadAt(device, t, start * bytes, buf.subarray(0, count * bytes));
    onBytes?.(count * bytes);
    // let other work (a progress bar, a server's sockets) run between chunks
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * t as the window of its pool that starts at a seeded offset, wrapping around the pool's end:
 * within a tensor no value repeats until POOL_ELEMS, and tensors of one range start apart.
 */
async function fillFromPool(device: Device, t: Tensor, spec: WeightSpec, seed: number, chunkBytes: number, onBytes: ((n: number) => void) | undefined, pools: DummyPools): Promise<void> {
  const dtype = t.dtype as WeightDType;
  const bytes = DTYPE_BYTES[dtype];
  const { center, halfWidth } = dummyRange(spec);
  const key = `${dtype} ${center} ${halfWidth}`;
  let pool = pools.get(key);
  if (!pool) {
    pool = new Uint8Array(POOL_ELEMS * bytes);
    randomFill(pool, bytes, valueTable(center, halfWidth, dtype), POOL_ELEMS / 2, hash(seed, key));
    pools.set(key, pool);
  }
  const n = numel(spec.shape);
  // even starts and counts keep every upload 4-byte aligned for 16-bit dtypes (the last may be odd)
  const chunkElems = Math.max(2, Math.floor(chunkBytes / bytes / 2) * 2);
  let at = (hash(seed, spec.name) % (POOL_ELEMS / 2)) * 2;
  for (let start = 0; start < n; ) {
    const count = Math.min(chunkElems, n - start, POOL_ELEMS - at);
    uploadAt(device, t, start * bytes, pool.subarray(at * bytes, (at + count) * bytes));
    onBytes?.(count * bytes);
    start += count;
    at = (at + count) % POOL_ELEMS;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * Writes 2 * pairs elements of out from table entries drawn by mulberry32 (Tommy Ettinger),
 * inlined: one u32 from `state` gives the indices of two elements, the low half first. Returns
 * the state to continue the stream with.
 */
function randomFill(out: Uint8Array, bytes: number, table: Uint16Array | Uint32Array, pairs: number, state: number): number {
  const words = new Uint32Array(out.buffer, out.byteOffset, bytes === 2 ? pairs : 2 * pairs);
  for (let i = 0; i < pairs; i++) {
    state = (state + 0x6d2b79f5) | 0;
    let r = Math.imul(state ^ (state >>> 15), state | 1);
    r ^= r + Math.imul(r ^ (r >>> 7), r | 61);
    r ^= r >>> 14;
    if (bytes === 2) words[i] = table[r & 0xffff] | (table[r >>> 16] << 16); // two 16-bit elements a word
    else {
      words[2 * i] = table[r & 0xffff];
      words[2 * i + 1] = table[r >>> 16];
    }
  }
  return state;
}

/** Entry k holds center + halfWidth * ((k + 0.5) / 32768 - 1) as dtype bits: a uniform grid of 65536 values. */
function valueTable(center: number, halfWidth: number, dtype: WeightDType): Uint16Array | Uint32Array {
  const values = new Float64Array(65536);
  for (let k = 0; k < 65536; k++) values[k] = center + halfWidth * ((k + 0.5) / 32768 - 1);
  const enc = encode(values, dtype);
  return DTYPE_BYTES[dtype] === 2 ? new Uint16Array(enc.buffer) : new Uint32Array(enc.buffer);
}

/** FNV-1a of the name mixed with the seed: each tensor has its own stream, whatever the load order. */
function hash(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

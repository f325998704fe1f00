// Seeded dummy weights: every tensor of a config filled with small uniform values, generated
// chunk by chunk on the host and uploaded, so a 13 GB model never needs 13 GB of host memory.
// Values come from a 65536-entry table of the tensor's distribution already encoded in its
// dtype, indexed by 16 random bits: one table load an element instead of a float conversion,
// which is what makes a 7B model take seconds rather than minutes.

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

/** Fills t (spec's shape, any weight dtype) with values seeded by (seed, spec.name). */
export async function fillDummy(device: Device, t: Tensor, spec: WeightSpec, seed: number, chunkBytes: number, onBytes?: (n: number) => void): Promise<void> {
  const dtype = t.dtype as WeightDType;
  const bytes = DTYPE_BYTES[dtype];
  const { center, halfWidth } = dummyRange(spec);
  const table = valueTable(center, halfWidth, dtype);
  const n = numel(spec.shape);
  // an even number of elements per chunk: each random u32 gives two elements
  const chunkElems = Math.max(2, Math.floor(chunkBytes / bytes / 2) * 2);
  const buf = new Uint8Array(Math.min(chunkElems, n + (n % 2)) * bytes);
  let state = hash(seed, spec.name);
  for (let start = 0; start < n; start += chunkElems) {
    const count = Math.min(chunkElems, n - start);
    const pairs = (count + 1) >>> 1;
    // mulberry32 (Tommy Ettinger), inlined: one u32 gives the table indices of two elements
    if (bytes === 2) {
      const tab = table as Uint16Array;
      const out = new Uint32Array(buf.buffer, 0, pairs); // two 16-bit elements a word, low one first
      for (let i = 0; i < pairs; i++) {
        state = (state + 0x6d2b79f5) | 0;
        let r = Math.imul(state ^ (state >>> 15), state | 1);
        r ^= r + Math.imul(r ^ (r >>> 7), r | 61);
        r ^= r >>> 14;
        out[i] = tab[r & 0xffff] | (tab[r >>> 16] << 16);
      }
    } else {
      const tab = table as Uint32Array;
      const out = new Uint32Array(buf.buffer, 0, pairs * 2);
      for (let i = 0; i < pairs; i++) {
        state = (state + 0x6d2b79f5) | 0;
        let r = Math.imul(state ^ (state >>> 15), state | 1);
        r ^= r + Math.imul(r ^ (r >>> 7), r | 61);
        r ^= r >>> 14;
        out[2 * i] = tab[r & 0xffff];
        out[2 * i + 1] = tab[r >>> 16];
      }
    }
    uploadAt(device, t, start * bytes, buf.subarray(0, count * bytes));
    onBytes?.(count * bytes);
    // let other work (a progress bar, a server's sockets) run between chunks
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
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

// Tensor helpers over any Device: allocate, view, fill from host arrays, read back.

import { type Device, type Tensor, WEIGHT_TILE_K, WEIGHT_TILE_ROWS } from './device.ts';
import { DTYPE_BYTES, type DType, byteSize, decode, encode, numel } from './dtype.ts';

/** A fresh tensor in its own buffer. */
export function empty(device: Device, shape: readonly number[], dtype: DType, label = 'tensor'): Tensor {
  const bytes = Math.max(4, Math.ceil(byteSize(shape, dtype) / 4) * 4); // no `& ~3`: it wraps past 2 GiB
  return { buffer: device.alloc(bytes, label), offset: 0, shape: [...shape], dtype };
}

/** A tensor holding `values` converted to `dtype`. */
export function fromArray(device: Device, values: ArrayLike<number>, shape: readonly number[], dtype: DType, label = 'tensor'): Tensor {
  if (values.length !== numel(shape)) throw new Error(`fromArray: ${values.length} values for shape [${shape}]`);
  const t = empty(device, shape, dtype, label);
  device.upload(t, pad4(encode(values, dtype)));
  return t;
}

/** A view of `shape` starting `elementOffset` elements into t (contiguous, same dtype). */
export function view(t: Tensor, elementOffset: number, shape: readonly number[]): Tensor {
  if (t.layout) throw new RangeError(`view: a packed (${t.layout}) weight has no element views; take whole tiles of rows with rows()`);
  const offset = t.offset + elementOffset * DTYPE_BYTES[t.dtype];
  if (offset + byteSize(shape, t.dtype) > t.offset + byteSize(t.shape, t.dtype)) {
    throw new RangeError(`view [${shape}] at ${elementOffset} is outside [${t.shape}]`);
  }
  return { buffer: t.buffer, offset, shape: [...shape], dtype: t.dtype };
}

/** The fewest rows of rowBytes bytes each whose total is a multiple of alignment bytes. */
export function alignedRows(rowBytes: number, alignment: number): number {
  let [x, y] = [alignment, rowBytes];
  while (y) [x, y] = [y, x % y];
  return alignment / x;
}

/** Rows [start, start + count) of a tensor's first dimension. */
export function rows(t: Tensor, start: number, count: number): Tensor {
  const rowElems = numel(t.shape.slice(1));
  if (t.layout) {
    // whole tiles: the block's tiles are contiguous, its last one padded as the whole tensor's
    const n = t.shape[0];
    if (start % WEIGHT_TILE_ROWS || (count % WEIGHT_TILE_ROWS && start + count !== n) || start < 0 || start + count > n) {
      throw new RangeError(`rows: rows [${start}, ${start + count}) of a packed (${t.layout}) [${t.shape}] weight are not whole tiles of ${WEIGHT_TILE_ROWS}`);
    }
    return { buffer: t.buffer, offset: t.offset + start * rowElems * DTYPE_BYTES[t.dtype], shape: [count, ...t.shape.slice(1)], dtype: t.dtype, layout: t.layout };
  }
  return view(t, start * rowElems, [count, ...t.shape.slice(1)]);
}

/** Reads a tensor back as numbers. */
export async function toArray(device: Device, t: Tensor): Promise<Float64Array | Float32Array | Int32Array | Uint32Array> {
  const bytes = await device.download(t);
  return decode(bytes.subarray(0, byteSize(t.shape, t.dtype)), t.dtype);
}

/** Byte length rounded up to a multiple of 4 (WebGPU writes are 4-byte granular). */
export function pad4(bytes: Uint8Array): Uint8Array {
  if (bytes.byteLength % 4 === 0) return bytes;
  const out = new Uint8Array((bytes.byteLength + 3) & ~3);
  out.set(bytes);
  return out;
}

export function tensorBytes(t: Tensor): number {
  return byteSize(t.shape, t.dtype);
}

/** Bytes a tensor occupies in its buffer: tensorBytes, or a packed weight's rows rounded up to whole tiles. */
export function storedBytes(t: Tensor): number {
  if (!t.layout) return tensorBytes(t);
  return byteSize([Math.ceil(t.shape[0] / WEIGHT_TILE_ROWS) * WEIGHT_TILE_ROWS, ...t.shape.slice(1)], t.dtype);
}

/**
 * The host's copy of the tiled layout (Tensor.layout 'tiled', tile_weight.wgsl): 16-bit values
 * [rows, k] row-major as [ceil(rows / t)][k / bk][t][bk], rows past the last whole tile zero.
 * Tests check the device's tiling against it; the lab tiles its operands with it (t 128 or 256).
 */
export function tileBits(bits: Uint16Array, rows: number, k: number, t = WEIGHT_TILE_ROWS, bk = WEIGHT_TILE_K): Uint16Array {
  const out = new Uint16Array(Math.ceil(rows / t) * t * k);
  const kb = k / bk;
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < kb; b++) out.set(bits.subarray(r * k + b * bk, (r * k + b * bk) + bk), ((Math.floor(r / t) * kb + b) * t + (r % t)) * bk);
  }
  return out;
}

// Streaming tensor bytes from safetensors files onto a device: fs reads of at most `chunkBytes`
// into one reused host buffer, each chunk converted if the device dtype differs and uploaded at
// its byte offset. Host memory stays at a few chunks however large the checkpoint.

import { type FileHandle, open } from 'node:fs/promises';
import type { Device, Tensor } from '../device/device.ts';
import { DTYPE_BYTES, byteSize, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../device/dtype.ts';
import type { WeightDType } from '../device/ops.ts';
import { type TensorInfo, WeightsError } from './safetensors.ts';

export const DEFAULT_CHUNK_BYTES = 64 * 2 ** 20;

/** Receives consecutive pieces of a tensor; `chunk` is reused after the returned promise settles. */
export type ChunkSink = (chunk: Uint8Array, byteOffset: number) => void | Promise<void>;

/**
 * Reads tensors through one reused chunk buffer. That relies on `device.upload` copying the
 * data before it returns, as WebGPU's writeBuffer and the cpu backend do.
 */
export class TensorReader {
  private handles = new Map<string, FileHandle>();
  private buf: Uint8Array;
  private out: Uint8Array | undefined;
  readonly chunkBytes: number;

  constructor(chunkBytes = DEFAULT_CHUNK_BYTES) {
    // a multiple of 8 so that chunk boundaries fall on whole elements of every dtype, and a
    // converted chunk (2 <-> 4 bytes an element) starts at a 4-byte aligned device offset
    this.chunkBytes = Math.max(8, Math.floor(chunkBytes / 8) * 8);
    this.buf = new Uint8Array(this.chunkBytes);
  }

  /** Calls sink with the tensor's bytes in order, chunk by chunk. */
  async read(info: TensorInfo, sink: ChunkSink): Promise<void> {
    const fh = await this.handle(info);
    for (let pos = info.start; pos < info.end; ) {
      const n = Math.min(this.chunkBytes, info.end - pos);
      let got = 0;
      while (got < n) {
        const { bytesRead } = await fh.read(this.buf, got, n - got, pos + got);
        if (bytesRead === 0) throw new WeightsError(info.file, info.name, `file ended at byte ${pos + got}, inside the tensor's data [${info.start}, ${info.end}): truncated, or changed while loading?`);
        got += bytesRead;
      }
      await sink(this.buf.subarray(0, n), pos - info.start);
      pos += n;
    }
  }

  /**
   * Streams a tensor into dst (same number of elements), converting from its file dtype to
   * dst.dtype. dst's buffer must have room up to the next multiple of 4 bytes (as `empty` gives).
   */
  async upload(device: Device, dst: Tensor, info: TensorInfo, onBytes?: (n: number) => void): Promise<void> {
    const from = info.dtype;
    const to = dst.dtype as WeightDType;
    const total = byteSize(dst.shape, to);
    if (total !== ((info.end - info.start) / DTYPE_BYTES[from]) * DTYPE_BYTES[to]) throw new RangeError(`upload: [${dst.shape}] ${to} does not match ${info.name} [${info.shape}] ${from}`);
    // arithmetic, not `& ~3`: bitwise ops truncate to 32 bits and tensors may pass 2 GiB
    const room = Math.ceil(total / 4) * 4;
    if (dst.offset % 4 !== 0 || dst.offset + room > dst.buffer.size) throw new RangeError(`upload: ${info.name} needs a 4-byte aligned destination with room for ${room} bytes`);
    await this.read(info, (chunk, srcOffset) => {
      const bytes = from === to ? chunk : this.convert(chunk, from, to);
      const offset = (srcOffset / DTYPE_BYTES[from]) * DTYPE_BYTES[to];
      uploadAt(device, dst, offset, bytes);
      onBytes?.(chunk.byteLength);
    });
  }

  private convert(chunk: Uint8Array, from: WeightDType, to: WeightDType): Uint8Array {
    this.out ??= new Uint8Array(this.chunkBytes * 2);
    const n = chunk.byteLength / DTYPE_BYTES[from];
    const out = this.out.subarray(0, n * DTYPE_BYTES[to]);
    convert(chunk, from, out, to, n);
    return out;
  }

  private async handle(info: TensorInfo): Promise<FileHandle> {
    let fh = this.handles.get(info.file);
    if (!fh) {
      try {
        fh = await open(info.file, 'r');
      } catch (e) {
        throw new WeightsError(info.file, info.name, `cannot open (${(e as NodeJS.ErrnoException).code ?? e})`);
      }
      this.handles.set(info.file, fh);
    }
    return fh;
  }

  async close(): Promise<void> {
    const hs = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(hs.map((h) => h.close()));
  }
}

/**
 * Writes bytes into dst at a byte offset. Device writes go in 4-byte units (WebGPU's
 * writeBuffer): a tail of 1-3 bytes is padded with zeros into the slack that `empty` leaves.
 */
export function uploadAt(device: Device, dst: Tensor, byteOffset: number, bytes: Uint8Array): void {
  const at = (off: number, n: number): Tensor => ({ buffer: dst.buffer, offset: dst.offset + off, shape: [n], dtype: 'u32' });
  const body = bytes.byteLength - (bytes.byteLength % 4);
  if (body > 0) device.upload(at(byteOffset, body / 4), bytes.subarray(0, body));
  if (body < bytes.byteLength) {
    const tail = new Uint8Array(4);
    tail.set(bytes.subarray(body));
    device.upload(at(byteOffset + body, 1), tail);
  }
}

let f16Table: Float32Array | undefined;

/** Every f16 bit pattern widened to f32 (exact): 256 KiB once, then a table load an element. */
function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

/** Converts n elements between weight dtypes; narrowing to f16/bf16 rounds to nearest even. */
export function convert(src: Uint8Array, from: WeightDType, dst: Uint8Array, to: WeightDType, n: number): void {
  // typed views need aligned starts (the reader's chunk buffers are): copy anything else
  if (src.byteOffset % 4 !== 0) src = src.slice();
  if (dst.byteOffset % 4 !== 0) {
    const tmp = new Uint8Array(n * DTYPE_BYTES[to]);
    convert(src, from, tmp, to, n);
    dst.set(tmp);
    return;
  }
  if (to === 'f32') {
    if (from === 'bf16') {
      // bf16 is the top half of an f32: widening is a shift
      const s = new Uint16Array(src.buffer, src.byteOffset, n);
      const d = new Uint32Array(dst.buffer, dst.byteOffset, n);
      for (let i = 0; i < n; i++) d[i] = s[i] << 16;
      return;
    }
    if (from === 'f16') {
      const s = new Uint16Array(src.buffer, src.byteOffset, n);
      const d = new Float32Array(dst.buffer, dst.byteOffset, n);
      const table = f16ToF32Table();
      for (let i = 0; i < n; i++) d[i] = table[s[i]];
      return;
    }
  }
  const wide = widen(src, from, n);
  if (to === 'f32') {
    dst.set(new Uint8Array(wide.buffer, wide.byteOffset, n * 4));
    return;
  }
  const d = new Uint16Array(dst.buffer, dst.byteOffset, n);
  const narrow = to === 'f16' ? f32ToF16Bits : f32ToBf16Bits;
  for (let i = 0; i < n; i++) d[i] = narrow(wide[i]);
}

/** n elements of src as f32 (f16 and bf16 widen exactly). */
function widen(src: Uint8Array, from: WeightDType, n: number): Float32Array {
  if (from === 'f32') return new Float32Array(src.buffer, src.byteOffset, n);
  const out = new Float32Array(n);
  convert(src, from, new Uint8Array(out.buffer), 'f32', n);
  return out;
}

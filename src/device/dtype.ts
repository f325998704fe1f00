// Element types and host-side conversions. Activations are f32 on every backend; weights
// (and later the KV cache) may be stored as f16 or bf16, which WGSL reads as packed u32.

export type DType = 'f32' | 'f16' | 'bf16' | 'i32' | 'u32';

export const DTYPE_BYTES: Record<DType, number> = { f32: 4, f16: 2, bf16: 2, i32: 4, u32: 4 };

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function byteSize(shape: readonly number[], dtype: DType): number {
  return numel(shape) * DTYPE_BYTES[dtype];
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits of x, round to nearest even (with overflow to inf and subnormals). */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow
  if (e <= 0) {
    if (e < -10) return sign; // underflow to zero
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++; // may carry into exponent: correct
  return sign | half;
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bits of x, round to nearest even. */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff; // nan
  const rounded = b + 0x7fff + ((b >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

export function bf16BitsToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

/** Encodes numbers as the bytes of `dtype`. */
export function encode(values: ArrayLike<number>, dtype: DType): Uint8Array {
  const n = values.length;
  switch (dtype) {
    case 'f32':
      return new Uint8Array(Float32Array.from(values).buffer);
    case 'i32':
      return new Uint8Array(Int32Array.from(values).buffer);
    case 'u32':
      return new Uint8Array(Uint32Array.from(values).buffer);
    case 'f16':
    case 'bf16': {
      const out = new Uint16Array(n);
      const conv = dtype === 'f16' ? f32ToF16Bits : f32ToBf16Bits;
      for (let i = 0; i < n; i++) out[i] = conv(values[i]);
      return new Uint8Array(out.buffer);
    }
  }
}

/** Decodes the bytes of `dtype` to numbers (f16/bf16 widened exactly). */
export function decode(bytes: Uint8Array, dtype: DType): Float64Array | Int32Array | Uint32Array | Float32Array {
  const buf = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  switch (dtype) {
    case 'f32':
      return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    case 'i32':
      return new Int32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    case 'u32':
      return new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    case 'f16':
    case 'bf16': {
      const h = new Uint16Array(buf.buffer, buf.byteOffset, buf.byteLength / 2);
      const out = new Float64Array(h.length);
      const conv = dtype === 'f16' ? f16BitsToF32 : bf16BitsToF32;
      for (let i = 0; i < h.length; i++) out[i] = conv(h[i]);
      return out;
    }
  }
}

/** Rounds values through `dtype` (what the device will see after storing them as that type). */
export function roundTrip(values: ArrayLike<number>, dtype: DType): Float64Array {
  return Float64Array.from(decode(encode(values, dtype), dtype));
}

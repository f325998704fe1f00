// Test data of the kernel labs: random values from xorshift streams (the same sequence on every
// run, so that a lab's inputs repeat).

/** A xorshift32 stream from `seed`: each call gives the next 32-bit state, unsigned. */
export function xorshift(seed: number): () => number {
  let s = seed;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

const next = xorshift(0x2545f491);

/** n random f16 bit patterns, never zero or huge: sign random, magnitude in [2^lo, 2^(lo + span)). */
export function randF16(n: number, lo: number, span: number): Uint16Array {
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const r = next();
    out[i] = ((r >>> 31) << 15) | ((15 + lo + ((r >>> 10) % span)) << 10) | (r & 0x3ff);
  }
  return out;
}

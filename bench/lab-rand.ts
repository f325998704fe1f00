// Test data of the kernel labs: random f16 bit patterns from one xorshift stream per process
// (the same sequence on every run, so that a lab's inputs repeat).

let seed = 0x2545f491;

/** n random f16 bit patterns, never zero or huge: sign random, magnitude in [2^lo, 2^(lo + span)). */
export function randF16(n: number, lo: number, span: number): Uint16Array {
  const out = new Uint16Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const r = s >>> 0;
    out[i] = ((r >>> 31) << 15) | ((15 + lo + ((r >>> 10) % span)) << 10) | (r & 0x3ff);
  }
  seed = s;
  return out;
}

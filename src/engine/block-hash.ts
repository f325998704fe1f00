// Content keys for full KV blocks (automatic prefix caching). A block's key chains over its
// prefix: key(i) = hash(key(i-1), tokens of block i), so equal keys mean (almost surely) equal
// prefixes. "Almost" is not enough for a cache that hands one request another's K/V, so the block
// manager compares the tokens and the parent block's identity on every hit; the key only finds
// the candidate. That is also why the hash function can be swapped (tests use a constant one to
// force collisions everywhere).

/** The key of a full block, given its parent's key (null for the first block) and its tokens. */
export type BlockHashFn = (parent: string | null, tokens: ArrayLike<number>) => string;

/**
 * 64 bits as 16 hex digits, from two independent 32-bit lanes: FNV-1a over bytes and
 * MurmurHash3 (x86_32 body and finalizer) over 32-bit words. Two lanes of plain 32-bit integer
 * arithmetic are several times faster in V8 than one 64-bit FNV-1a over BigInt.
 */
export const hashBlock: BlockHashFn = (parent, tokens) => {
  let a = 0x811c9dc5; // FNV-1a offset basis
  let b = 0x9747b28c; // Murmur seed
  const words = parent === null ? 1 : 2;
  const n = tokens.length + words;
  for (let i = 0; i < n; i++) {
    let w: number;
    if (parent === null) w = i === 0 ? 0xffffffff : tokens[i - 1];
    else if (i < 2) w = parseInt(parent.slice(i * 8, i * 8 + 8), 16);
    else w = tokens[i - 2];
    for (let s = 0; s < 32; s += 8) a = Math.imul(a ^ ((w >>> s) & 0xff), 0x01000193);
    let k = Math.imul(w, 0xcc9e2d51);
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593);
    b ^= k;
    b = (Math.imul((b << 13) | (b >>> 19), 5) + 0xe6546b64) | 0;
  }
  b ^= n * 4;
  b = Math.imul(b ^ (b >>> 16), 0x85ebca6b);
  b = Math.imul(b ^ (b >>> 13), 0xc2b2ae35);
  b ^= b >>> 16;
  return hex8(a) + hex8(b);
};

function hex8(x: number): string {
  return (x >>> 0).toString(16).padStart(8, '0');
}

// CPU reference of the paged-KV ops: plain loops over the block tables, float64 accumulation.
// Caches are [numBlocks, blockSize, numKvHeads, headSize] (decoded to numbers here).

type Num = ArrayLike<number>;

export interface CacheShape {
  numBlocks: number;
  blockSize: number;
  numKvHeads: number;
  headSize: number;
}

/** Attention of one query row (all heads) over positions [0, len) of a sequence's blocks. */
function attendRow(q: Num, qRow: number, keyCache: Num, valueCache: Num, table: Num, len: number, c: CacheShape, numHeads: number, scale: number, out: Float64Array): void {
  const { blockSize, numKvHeads, headSize } = c;
  const group = numHeads / numKvHeads;
  const w = numKvHeads * headSize;
  const scores = new Float64Array(len);
  for (let h = 0; h < numHeads; h++) {
    const kvh = Math.floor(h / group);
    const qo = qRow * numHeads * headSize + h * headSize;
    let mx = -Infinity;
    for (let p = 0; p < len; p++) {
      const slot = table[Math.floor(p / blockSize)] * blockSize + (p % blockSize);
      let s = 0;
      for (let d = 0; d < headSize; d++) s += q[qo + d] * keyCache[slot * w + kvh * headSize + d];
      scores[p] = s * scale;
      mx = Math.max(mx, scores[p]);
    }
    let sum = 0;
    for (let p = 0; p < len; p++) {
      scores[p] = Math.exp(scores[p] - mx);
      sum += scores[p];
    }
    for (let d = 0; d < headSize; d++) {
      let acc = 0;
      for (let p = 0; p < len; p++) {
        const slot = table[Math.floor(p / blockSize)] * blockSize + (p % blockSize);
        acc += scores[p] * valueCache[slot * w + kvh * headSize + d];
      }
      // an empty context has no softmax: its output is 0, as in the kernels
      out[qo + d] = len > 0 ? acc / sum : 0;
    }
  }
}

export function pagedAttention(q: Num, keyCache: Num, valueCache: Num, blockTables: Num, maxBlocks: number, contextLens: Num, c: CacheShape, numHeads: number, scale: number): Float64Array {
  const numSeqs = contextLens.length;
  const out = new Float64Array(numSeqs * numHeads * c.headSize);
  for (let s = 0; s < numSeqs; s++) {
    const table = Array.prototype.slice.call(blockTables, s * maxBlocks, (s + 1) * maxBlocks) as number[];
    attendRow(q, s, keyCache, valueCache, table, contextLens[s], c, numHeads, scale, out);
  }
  return out;
}

export function prefillAttention(q: Num, keyCache: Num, valueCache: Num, blockTables: Num, maxBlocks: number, queryStarts: Num, contextLens: Num, c: CacheShape, numHeads: number, scale: number): Float64Array {
  const numTokens = queryStarts[queryStarts.length - 1];
  const out = new Float64Array(numTokens * numHeads * c.headSize);
  for (let s = 0; s < contextLens.length; s++) {
    const table = Array.prototype.slice.call(blockTables, s * maxBlocks, (s + 1) * maxBlocks) as number[];
    const qlen = queryStarts[s + 1] - queryStarts[s];
    for (let i = 0; i < qlen; i++) {
      // the i-th query of the chunk sits at position contextLen - qlen + i and sees up to itself
      const pos = contextLens[s] - qlen + i;
      attendRow(q, queryStarts[s] + i, keyCache, valueCache, table, pos + 1, c, numHeads, scale, out);
    }
  }
  return out;
}

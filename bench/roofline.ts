// The throughput roofline of a workload on a device (ARCHITECTURE.md, "Ceilings"): the time no
// engine can beat given the device's memory bandwidth and matmul rate. Prefill is compute at
// the matmul rate; decode runs in waves of at most maxNumSeqs sequences, and each step of a
// wave reads every weight once plus each sequence's KV so far, or computes its FLOPs, whichever
// takes longer. Attention FLOPs and everything but weights and KV are left out: a lower bound
// on time, so an upper bound on tokens/s.

import type { ModelConfig } from '../src/model/config.ts';
import type { BenchRequest } from './workloads.ts';

export interface Ceilings {
  /** memory bandwidth, bytes read + written per second */
  bytesPerS: number;
  /** dense f16 matmul rate */
  flopsPerS: number;
}

/** H200, as ARCHITECTURE.md states it (PyTorch: ~4.3 TB/s copy, ~790 TFLOP/s). */
export const H200: Ceilings = { bytesPerS: 4.3e12, flopsPerS: 790e12 };

/** Parameters of the matmuls (every projection and the LM head; embeddings are a gather). */
export function matmulParams(c: ModelConfig): number {
  const h = c.hiddenSize;
  const qkv = h * c.headDim * (c.numHeads + 2 * c.numKvHeads);
  const o = c.numHeads * c.headDim * h;
  const mlp = 3 * h * c.intermediateSize;
  return c.numLayers * (qkv + o + mlp) + c.vocabSize * h;
}

/** Bytes of K and V per token of context over all layers, 16-bit cache. */
export function kvBytesPerToken(c: ModelConfig): number {
  return 2 * c.numLayers * c.numKvHeads * c.headDim * 2;
}

export function rooflineTokensPerS(c: ModelConfig, requests: readonly Pick<BenchRequest, 'promptIds' | 'outputLen'>[], maxNumSeqs: number, d: Ceilings): number {
  const params = matmulParams(c);
  const weightBytes = (params + c.vocabSize * c.hiddenSize) * 2; // projections, LM head, embeddings
  const kv = kvBytesPerToken(c);
  let seconds = 0;
  let tokens = 0;
  for (const r of requests) {
    seconds += (2 * params * r.promptIds.length) / d.flopsPerS;
    tokens += r.promptIds.length + r.outputLen;
  }
  // decode waves in arrival order; a wave lasts as long as its longest output
  for (let i = 0; i < requests.length; i += maxNumSeqs) {
    const wave = requests.slice(i, i + maxNumSeqs);
    const steps = Math.max(...wave.map((r) => r.outputLen));
    for (let s = 0; s < steps; s++) {
      const live = wave.filter((r) => s < r.outputLen);
      const ctx = live.reduce((a, r) => a + r.promptIds.length + s, 0);
      seconds += Math.max((weightBytes + ctx * kv) / d.bytesPerS, (2 * params * live.length) / d.flopsPerS);
    }
  }
  return tokens / seconds;
}

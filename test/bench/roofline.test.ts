import { describe, expect, it } from 'vitest';
import { H200, kvBytesPerToken, matmulParams, rooflineTokensPerS } from '../../bench/roofline.ts';
import { fixedWorkload } from '../../bench/workloads.ts';
import { PRESETS } from '../../src/model/config.ts';

describe('throughput roofline', () => {
  const c = PRESETS['llama-2-7b'];
  it('counts the 7B shapes as published: 6.74e9 parameters, 0.5 MB of KV per token', () => {
    // projections + LM head = all parameters but the embeddings and norms
    expect(matmulParams(c) + c.vocabSize * c.hiddenSize).toBeCloseTo(6.74e9, -8);
    expect(kvBytesPerToken(c)).toBe(524288);
  });
  it('puts fixed-256 x 1000 on an H200 near ARCHITECTURE.md\'s ~29k tokens/s', () => {
    const w = fixedWorkload(1000, 256, 256, c.vocabSize, 0);
    const t = rooflineTokensPerS(c, w.requests, 256, H200);
    expect(t).toBeGreaterThan(24000);
    expect(t).toBeLessThan(32000);
  });
  it('rises with bandwidth when decode is memory-bound, and a wider batch amortises the weights', () => {
    const w = fixedWorkload(64, 64, 64, c.vocabSize, 0);
    const base = rooflineTokensPerS(c, w.requests, 8, H200);
    expect(rooflineTokensPerS(c, w.requests, 8, { ...H200, bytesPerS: 2 * H200.bytesPerS })).toBeGreaterThan(1.5 * base);
    expect(rooflineTokensPerS(c, w.requests, 64, H200)).toBeGreaterThan(2 * base);
  });
});

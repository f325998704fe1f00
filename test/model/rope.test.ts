// Rotary inverse frequencies: bit for bit against transformers' buffers, and by hand.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type RopeScaling, ropeInvFreq } from '../../src/model/config.ts';

const ref = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'rope.json'), 'utf8'));
const llama31: RopeScaling = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };

describe('ropeInvFreq', () => {
  // the inv_freq buffers of LlamaRotaryEmbedding in transformers 5.17 (fixtures/make_fixtures.py)
  it.each([
    ['llama2', 10000, { type: 'none' }],
    ['llama3', 500000, { type: 'none' }],
    ['llama3.1', 500000, llama31],
    ['llama3.2', 500000, { ...llama31, factor: 32 }],
    ['linear', 10000, { type: 'linear', factor: 4 }],
    ['qwen2', 1e6, { type: 'none' }],
  ] as [string, number, RopeScaling][])('%s matches transformers bit for bit', (name, ropeTheta, ropeScaling) => {
    const { headDim, bits } = ref[name];
    const got = ropeInvFreq({ headDim, ropeTheta, ropeScaling });
    expect(got.length).toBe(headDim / 2);
    expect(Array.from(new Int32Array(got.buffer))).toEqual(bits);
  });

  it('default: theta^(-2i/d)', () => {
    const inv = ropeInvFreq({ headDim: 128, ropeTheta: 10000, ropeScaling: { type: 'none' } });
    expect(inv[0]).toBe(1);
    expect(inv[1]).toBeCloseTo(0.865964323360065, 7); // 10000^(-2/128)
    expect(inv[63]).toBeCloseTo(1.1547819846894583e-4, 10); // 10000^(-126/128)
  });

  it('linear divides every frequency by factor', () => {
    const base = ropeInvFreq({ headDim: 64, ropeTheta: 10000, ropeScaling: { type: 'none' } });
    const lin = ropeInvFreq({ headDim: 64, ropeTheta: 10000, ropeScaling: { type: 'linear', factor: 4 } });
    for (let i = 0; i < 32; i++) expect(lin[i]).toBe(Math.fround(base[i] / 4));
  });

  it('llama3: high band kept, low band divided by factor, the middle band blended', () => {
    const base = ropeInvFreq({ headDim: 128, ropeTheta: 500000, ropeScaling: { type: 'none' } });
    const scaled = ropeInvFreq({ headDim: 128, ropeTheta: 500000, ropeScaling: llama31 });
    // bands by wavelength 2 pi / f against 8192 / 4 = 2048 and 8192 / 1 = 8192
    const bands = { high: [] as number[], mid: [] as number[], low: [] as number[] };
    for (let i = 0; i < 64; i++) {
      const wavelen = (2 * Math.PI) / base[i];
      if (wavelen < 2048) bands.high.push(i);
      else if (wavelen > 8192) bands.low.push(i);
      else bands.mid.push(i);
    }
    // wavelength 2 pi * 500000^(i/64) < 2048 for i <= 28 and > 8192 for i >= 35 (by logs):
    // 29 high, 6 middle, 29 low frequencies
    expect([bands.high.length, bands.mid.length, bands.low.length]).toEqual([29, 6, 29]);
    expect([bands.high.at(-1), bands.mid[0], bands.mid.at(-1), bands.low[0]]).toEqual([28, 29, 34, 35]);
    for (const i of bands.high) expect(scaled[i]).toBe(base[i]);
    for (const i of bands.low) expect(scaled[i]).toBeCloseTo(base[i] / 8, 12);
    for (const i of bands.mid) {
      const s = (8192 / ((2 * Math.PI) / base[i]) - 1) / (4 - 1); // 0 at the low edge, 1 at the high edge
      expect(s).toBeGreaterThanOrEqual(0);
      expect(s).toBeLessThanOrEqual(1);
      const want = ((1 - s) * base[i]) / 8 + s * base[i];
      expect(Math.abs(scaled[i] - want) / want).toBeLessThan(1e-6);
    }
    // i = 32 by hand: f = 500000^(-1/2) = 1.41421356e-3, wavelength 2 pi / f = 4442.883,
    // s = (8192 / 4442.883 - 1) / 3 = 0.2812826, f * ((1 - s) / 8 + s) = 5.2484616e-4
    expect(scaled[32]).toBeCloseTo(5.2484616e-4, 9); // to f32 precision
  });
});

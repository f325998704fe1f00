// Rotary inverse frequencies and the table of cos/sin the rope op reads (src/device/ops.ts),
// both computed once on the host. The formulas are those HF transformers uses to build its
// rotary cache; every step is rounded to f32 (Math.fround) because transformers computes them
// in f32 tensors. test/model/rope.test.ts checks the result bit for bit against the buffers
// transformers 5.17 built (test/model/fixtures/rope.json).

import type { ModelConfig } from './config.ts';

const f = Math.fround;

/** invFreq: [headDim / 2] f32. Rotation i turns pair (i, i + headDim/2) by position * invFreq[i]. */
export function ropeInvFreq(config: Pick<ModelConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float32Array {
  const dim = config.headDim;
  const base = f(config.ropeTheta);
  const inv = new Float32Array(dim / 2);
  // default: theta_i = base^(-2i/dim), the RoFormer frequencies
  for (let i = 0; i < inv.length; i++) inv[i] = f(1 / f(Math.pow(base, f(f(2 * i) / dim))));

  const s = config.ropeScaling;
  switch (s.type) {
    case 'none':
      return inv;
    case 'linear': {
      // position interpolation: positions are divided by factor, the same as dividing frequencies
      const factor = f(s.factor);
      for (let i = 0; i < inv.length; i++) inv[i] = f(inv[i] / factor);
      return inv;
    }
    case 'llama3':
      return llama3(inv, s);
  }
}

/**
 * Llama 3.1's scaling by wavelength (2 pi / freq) against the original context length L:
 * - wavelength < L / highFreqFactor (high frequencies, local detail): kept as is;
 * - wavelength > L / lowFreqFactor (low frequencies, would wrap past L): divided by factor;
 * - between: a blend (1 - s) * freq / factor + s * freq with s = (L / wavelength - low) / (high - low),
 *   which runs from 0 at the low band's edge to 1 at the high band's.
 */
function llama3(inv: Float32Array, s: Extract<ModelConfig['ropeScaling'], { type: 'llama3' }>): Float32Array {
  const factor = f(s.factor);
  const low = f(s.lowFreqFactor);
  const len = f(s.originalMaxPositionEmbeddings);
  const lowWavelen = f(s.originalMaxPositionEmbeddings / s.lowFreqFactor);
  const highWavelen = f(s.originalMaxPositionEmbeddings / s.highFreqFactor);
  const span = f(s.highFreqFactor - s.lowFreqFactor);
  const twoPi = f(2 * Math.PI);
  const out = new Float32Array(inv.length);
  for (let i = 0; i < inv.length; i++) {
    const freq = inv[i];
    const wavelen = f(twoPi / freq);
    if (wavelen < highWavelen) out[i] = freq;
    else if (wavelen > lowWavelen) out[i] = f(freq / factor);
    else {
      const smooth = f(f(f(len / wavelen) - low) / span);
      out[i] = f(f(f(f(1 - smooth) * freq) / factor) + f(smooth * freq));
    }
  }
  return out;
}

/**
 * cosSin: [maxPositions, headDim] f32, row p = cos(p * invFreq[i]) for i < headDim/2, then the
 * sins. The angle is the f32 product, as transformers forms it; cos and sin of it in float64.
 */
export function ropeCosSin(invFreq: Float32Array, maxPositions: number): Float32Array {
  const half = invFreq.length;
  const out = new Float32Array(maxPositions * 2 * half);
  for (let p = 0; p < maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * invFreq[i]);
      out[p * 2 * half + i] = Math.cos(angle);
      out[p * 2 * half + half + i] = Math.sin(angle);
    }
  }
  return out;
}

// Parity of argmax and the sampling kernel with the CPU reference, plus statistical checks
// that what the device samples follows softmax(logits / T) restricted to top-k / top-p.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Device } from '../../src/device/index.ts';
import { samplingSet } from '../../src/device/cpu/reference.ts';
import { SEED, backendsUnderTest, host, normal, openBackend, output, reference, rng, runOp } from './harness.ts';

/**
 * Whether `got` is a correct draw for this row: it must be in the kept set, and the draw must
 * fall in its CDF interval (with a margin for f32 summation near an interval's edge).
 */
function isCorrectDraw(row: number[], t: number, k: number, p: number, u: number, got: number): boolean {
  const { keep, probs } = samplingSet(row, t, k, p);
  if (!keep[got]) return false;
  let total = 0;
  for (let j = 0; j < row.length; j++) if (keep[j]) total += probs[j];
  let before = 0;
  for (let j = 0; j < got; j++) if (keep[j]) before += probs[j];
  const target = u * total;
  const eps = 1e-5 * total;
  return target >= before - eps && target < before + probs[got] + eps;
}

describe.each(backendsUnderTest())('%s backend: argmax and sampling', (backend) => {
  let dev: Device;
  beforeAll(async () => {
    dev = await openBackend(backend);
  });
  afterAll(() => dev?.destroy());
  const r = rng(SEED ^ 0x9abc);

  it.each([
    [4, 32000, false],
    [33, 257, false],
    [16, 50, true], // small integers: many ties, the lowest index must win
  ])('argmax: %i rows of %i (ties %s)', async (n, v, ties) => {
    const x = ties ? Float64Array.from({ length: n * v }, () => Math.floor(r() * 5)) : normal(r, n * v, 3);
    const args = { x: host(x, [n, v]), out: output([n], 'i32') };
    const got = await runOp(dev, 'argmax', args);
    const want = await reference('argmax', args);
    expect(Array.from(got.out)).toEqual(Array.from(want.out));
  });

  it.each([
    // rows, vocab, temperature, top-k, top-p
    [8, 1000, 1.0, 0, 1.0],
    [8, 1000, 0.7, 50, 1.0],
    [8, 1000, 1.3, 0, 0.9],
    [8, 32000, 0.8, 40, 0.95],
    [5, 37, 2.0, 3, 0.5],
    [6, 4096, 0.0, 10, 0.9], // greedy whatever k and p say
  ])('sample: %i rows of %i, T %f, top-k %i, top-p %f', async (n, v, temp, topK, topP) => {
    const logits = normal(r, n * v, 2);
    const draws = Float64Array.from({ length: n }, () => r());
    const args = {
      logits: host(logits, [n, v]),
      temperature: host(new Array(n).fill(temp), [n]),
      topK: host(new Array(n).fill(topK), [n], 'i32'),
      topP: host(new Array(n).fill(topP), [n]),
      draws: host(draws, [n]),
      out: output([n], 'i32'),
    };
    const got = await runOp(dev, 'sample', args);
    const want = await reference('sample', args);
    const f32 = Float32Array.from(logits);
    for (let i = 0; i < n; i++) {
      const row = Array.from(f32.subarray(i * v, (i + 1) * v));
      if (temp === 0) expect(got.out[i]).toBe(want.out[i]);
      else expect(isCorrectDraw(row, temp, topK, topP, Float32Array.of(draws[i])[0], got.out[i]), `row ${i}: got ${got.out[i]}, reference ${want.out[i]}`).toBe(true);
    }
  });

  it('sample: per-row parameters differ within one batch', async () => {
    const n = 6;
    const v = 500;
    const temps = [0, 0.5, 1, 1.5, 0.9, 1];
    const ks = [0, 5, 0, 100, 1, 499];
    const ps = [1, 1, 0.8, 0.99, 1, 0.3];
    const logits = normal(r, n * v, 2);
    const draws = Float64Array.from({ length: n }, () => r());
    const args = {
      logits: host(logits, [n, v]),
      temperature: host(temps, [n]),
      topK: host(ks, [n], 'i32'),
      topP: host(ps, [n]),
      draws: host(draws, [n]),
      out: output([n], 'i32'),
    };
    const got = await runOp(dev, 'sample', args);
    const want = await reference('sample', args);
    const f32 = Float32Array.from(logits);
    expect(got.out[0]).toBe(want.out[0]);
    expect(got.out[4]).toBe(want.out[4]); // top-k 1 is greedy too
    for (let i = 1; i < n; i++) {
      const row = Array.from(f32.subarray(i * v, (i + 1) * v));
      expect(isCorrectDraw(row, temps[i], ks[i], ps[i], Float32Array.of(draws[i])[0], got.out[i]), `row ${i}`).toBe(true);
    }
  });

  it('sample: frequencies follow the softmax, top-k never leaves the k most likely', async () => {
    // one 8-token distribution drawn 4000 times; top-k 5 at temperature 0.8
    const v = 8;
    const n = 4000;
    const base = [2.0, 1.5, 1.0, 0.5, 0.0, -0.5, 3.0, -1.0];
    const [temp, k] = [0.8, 5];
    const args = {
      logits: host(Array.from({ length: n }, () => base).flat(), [n, v]),
      temperature: host(new Array(n).fill(temp), [n]),
      topK: host(new Array(n).fill(k), [n], 'i32'),
      topP: host(new Array(n).fill(1), [n]),
      draws: host(Float64Array.from({ length: n }, () => r()), [n]),
      out: output([n], 'i32'),
    };
    const got = await runOp(dev, 'sample', args);
    const counts = new Array(v).fill(0);
    for (const id of Array.from(got.out)) counts[id]++;
    const { keep, probs } = samplingSet(base, temp, k, 1);
    const mass = probs.reduce((s, q, j) => s + (keep[j] ? q : 0), 0);
    let chi2 = 0;
    for (let j = 0; j < v; j++) {
      if (!keep[j]) {
        expect(counts[j], `token ${j} is outside the top ${k}`).toBe(0);
        continue;
      }
      const e = (n * probs[j]) / mass;
      chi2 += (counts[j] - e) ** 2 / e;
    }
    // 4 degrees of freedom: P(chi2 > 23.5) < 1e-4 for a correct sampler
    expect(chi2).toBeLessThan(23.5);
  });
});

// Parity of argmax, the sampling kernel and logprobs with the CPU reference, plus statistical checks
// that what the device samples follows softmax(logits / T) restricted to top-k / top-p / min-p.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Device } from '../../src/device/index.ts';
import { samplingSet } from '../../src/device/cpu/reference.ts';
import { SEED, backendsUnderTest, host, normal, openBackend, output, reference, rng, runOp } from './harness.ts';

/**
 * Whether `got` is a correct draw for this row: it must be in the kept set, and the draw must
 * fall in its CDF interval (with a margin for f32 summation near an interval's edge). A logit
 * within a few ulps of the min-p cut may fall either side of it (WGSL's ln need not be
 * correctly rounded), so the sets of min_p moved by 1e-5 either way are accepted too.
 */
function isCorrectDraw(row: number[], t: number, k: number, p: number, m: number, u: number, got: number): boolean {
  return (m > 0 ? [m, m * (1 + 1e-5), m * (1 - 1e-5)] : [m]).some((mp) => inCdfInterval(row, t, k, p, mp, u, got));
}

function inCdfInterval(row: number[], t: number, k: number, p: number, m: number, u: number, got: number): boolean {
  const { keep, probs } = samplingSet(row, t, k, p, m);
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
    // rows, vocab, temperature, top-k, top-p, min-p
    [8, 1000, 1.0, 0, 1.0, 0],
    [8, 1000, 0.7, 50, 1.0, 0],
    [8, 1000, 1.3, 0, 0.9, 0],
    [8, 32000, 0.8, 40, 0.95, 0],
    [5, 37, 2.0, 3, 0.5, 0],
    [6, 4096, 0.0, 10, 0.9, 0.5], // greedy whatever k, p and min-p say
    [8, 1000, 1.0, 0, 1.0, 0.1],
    [8, 32000, 0.8, 40, 0.95, 0.05],
    [8, 32000, 1.5, 0, 1.0, 0.02],
    [8, 4096, 1.2, 0, 0.9, 0.3],
    [5, 37, 2.0, 0, 1.0, 1.0], // only the most likely token
  ])('sample: %i rows of %i, T %f, top-k %i, top-p %f, min-p %f', async (n, v, temp, topK, topP, minP) => {
    const logits = normal(r, n * v, 2);
    const draws = Float64Array.from({ length: n }, () => r());
    const args = {
      logits: host(logits, [n, v]),
      temperature: host(new Array(n).fill(temp), [n]),
      topK: host(new Array(n).fill(topK), [n], 'i32'),
      topP: host(new Array(n).fill(topP), [n]),
      minP: host(new Array(n).fill(minP), [n]),
      draws: host(draws, [n]),
      out: output([n], 'i32'),
    };
    const got = await runOp(dev, 'sample', args);
    const want = await reference('sample', args);
    const f32 = Float32Array.from(logits);
    for (let i = 0; i < n; i++) {
      const row = Array.from(f32.subarray(i * v, (i + 1) * v));
      if (temp === 0 || minP === 1) expect(got.out[i]).toBe(want.out[i]);
      else expect(isCorrectDraw(row, temp, topK, topP, minP, Float32Array.of(draws[i])[0], got.out[i]), `row ${i}: got ${got.out[i]}, reference ${want.out[i]}`).toBe(true);
    }
  });

  it('sample: per-row parameters differ within one batch', async () => {
    const n = 6;
    const v = 500;
    const temps = [0, 0.5, 1, 1.5, 0.9, 1];
    const ks = [0, 5, 0, 100, 1, 499];
    const ps = [1, 1, 0.8, 0.99, 1, 0.3];
    const ms = [0.5, 0, 0.1, 0.01, 0, 0.2];
    const logits = normal(r, n * v, 2);
    const draws = Float64Array.from({ length: n }, () => r());
    const args = {
      logits: host(logits, [n, v]),
      temperature: host(temps, [n]),
      topK: host(ks, [n], 'i32'),
      topP: host(ps, [n]),
      minP: host(ms, [n]),
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
      expect(isCorrectDraw(row, temps[i], ks[i], ps[i], ms[i], Float32Array.of(draws[i])[0], got.out[i]), `row ${i}`).toBe(true);
    }
  });

  it.each([
    // top-k, min-p: the kept sets are {6, 0, 1, 2, 3} and, at T 0.8, the logits >= 3 + 0.8 ln 0.05
    // = 0.60: {6, 0, 1, 2}
    [5, 0],
    [0, 0.05],
  ])('sample: frequencies follow the softmax, top-k %i / min-p %f never leave their set', async (k, minP) => {
    // one 8-token distribution drawn 4000 times at temperature 0.8
    const v = 8;
    const n = 4000;
    const base = [2.0, 1.5, 1.0, 0.5, 0.0, -0.5, 3.0, -1.0];
    const temp = 0.8;
    const args = {
      logits: host(Array.from({ length: n }, () => base).flat(), [n, v]),
      temperature: host(new Array(n).fill(temp), [n]),
      topK: host(new Array(n).fill(k), [n], 'i32'),
      topP: host(new Array(n).fill(1), [n]),
      minP: host(new Array(n).fill(minP), [n]),
      draws: host(Float64Array.from({ length: n }, () => r()), [n]),
      out: output([n], 'i32'),
    };
    const got = await runOp(dev, 'sample', args);
    const counts = new Array(v).fill(0);
    for (const id of Array.from(got.out)) counts[id]++;
    const { keep, probs } = samplingSet(base, temp, k, 1, minP);
    const kept = keep.reduce((s, x) => s + x, 0);
    expect(kept).toBe(minP ? 4 : 5);
    const mass = probs.reduce((s, q, j) => s + (keep[j] ? q : 0), 0);
    let chi2 = 0;
    for (let j = 0; j < v; j++) {
      if (!keep[j]) {
        expect(counts[j], `token ${j} is outside the kept set`).toBe(0);
        continue;
      }
      const e = (n * probs[j]) / mass;
      chi2 += (counts[j] - e) ** 2 / e;
    }
    // kept - 1 degrees of freedom (3 or 4): P(chi2 > 21.1 | 23.5) < 1e-4 for a correct sampler
    expect(chi2).toBeLessThan(kept === 4 ? 21.1 : 23.5);
  });

  it('sample: a -inf logit (a banned token) is never drawn, even at draws next to 1', async () => {
    // half of each row banned, the tail always: the last kept token of a row is then -inf, which
    // is where a draw pushed past the total by rounding used to land
    const n = 64;
    const v = 300;
    const logits = normal(r, n * v, 2);
    for (let i = 0; i < n; i++) for (let j = 0; j < v; j++) if (j >= v - 20 || r() < 0.5) logits[i * v + j] = -Infinity;
    const draws = Float64Array.from({ length: n }, (_, i) => (i % 2 ? 1 - 2 ** -24 : r()));
    const temps = Array.from({ length: n }, (_, i) => [0.5, 1, 2][i % 3]);
    const args = {
      logits: host(logits, [n, v]),
      temperature: host(temps, [n]),
      topK: host(new Array(n).fill(0), [n], 'i32'),
      topP: host(new Array(n).fill(1), [n]),
      minP: host(new Array(n).fill(0), [n]),
      draws: host(draws, [n]),
      out: output([n], 'i32'),
    };
    const got = await runOp(dev, 'sample', args);
    const want = await reference('sample', args);
    for (let i = 0; i < n; i++) {
      expect(logits[i * v + got.out[i]], `row ${i}: token ${got.out[i]}`).toBeGreaterThan(-Infinity);
      expect(logits[i * v + want.out[i]], `reference row ${i}`).toBeGreaterThan(-Infinity);
    }
  });
});

describe.each(backendsUnderTest())('%s backend: logprobs', (backend) => {
  let dev: Device;
  beforeAll(async () => {
    dev = await openBackend(backend);
  });
  afterAll(() => dev?.destroy());
  const r = rng(SEED ^ 0x10c9);

  it.each([
    // rows, vocab, top-n, logits
    [4, 32000, 5, 'normal'],
    [7, 1000, 20, 'normal'],
    [3, 50, 0, 'normal'], // no top tensors at all
    [5, 20, 20, 'normal'], // top-n = vocab: the whole row, sorted
    [6, 300, 12, 'ties'], // small integers: equal logits, the lower id first
    [4, 2000, 8, 'masked'], // -inf logits (banned tokens) in the sum and among the chosen
  ])('%i rows of %i, top %i, %s logits', async (n, v, topN, kind) => {
    const logits =
      kind === 'ties' ? Float64Array.from({ length: n * v }, () => Math.floor(r() * 6)) : normal(r, n * v, 3);
    if (kind === 'masked') for (let j = 0; j < n * v; j++) if (r() < 0.3) logits[j] = -Infinity;
    const ids = Array.from({ length: n }, (_, i) => (i === 0 ? 0 : i === 1 ? v - 1 : Math.floor(r() * v)));
    const args = {
      logits: host(logits, [n, v]),
      ids: host(ids, [n], 'i32'),
      topN,
      outLogprob: output([n]),
      ...(topN ? { outTopIds: output([n, topN], 'i32'), outTopLogprobs: output([n, topN]) } : {}),
    };
    const got = await runOp(dev, 'logprobs', args);
    const want = await reference('logprobs', args);
    for (let i = 0; i < n; i++) {
      const w = want.outLogprob[i];
      if (w === -Infinity) expect(got.outLogprob[i], `row ${i}`).toBe(-Infinity);
      else expect(Math.abs(got.outLogprob[i] - w), `row ${i}: got ${got.outLogprob[i]}, want ${w}`).toBeLessThan(1e-5);
    }
    if (!topN) return;
    // the order is that of the logits themselves (ties by id), so the ids are exact
    expect(Array.from(got.outTopIds)).toEqual(Array.from(want.outTopIds));
    for (let j = 0; j < n * topN; j++) expect(Math.abs(got.outTopLogprobs[j] - want.outTopLogprobs[j]), `entry ${j}`).toBeLessThan(1e-5);
    // descending within each row: the same check the reference's sort makes, against the data
    const f32 = Float32Array.from(logits);
    for (let i = 0; i < n; i++) {
      const row = Array.from(f32.subarray(i * v, (i + 1) * v));
      const top = Array.from(got.outTopIds).slice(i * topN, (i + 1) * topN);
      const kth = row[top[topN - 1]];
      expect(row.filter((x) => x > kth).length, `row ${i}: a larger logit is missing from the top`).toBeLessThan(topN);
      for (let q = 1; q < topN; q++) {
        const [a, b] = [row[top[q - 1]], row[top[q]]];
        expect(a > b || (a === b && top[q - 1] < top[q]), `row ${i} entries ${q - 1}, ${q}`).toBe(true);
      }
    }
  });
});

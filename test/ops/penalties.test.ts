// apply_penalties: vLLM's semantics on a hand-worked row, then parity with the CPU reference on
// random rows (duplicates, ids in prompt and output, padding anywhere, out-of-range ids, banned
// ids, rows with every penalty off, empty lists), and the per-row scratch left clean.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Device } from '../../src/device/index.ts';
import { SEED, type HostArgs, backendsUnderTest, host, normal, openBackend, reference, rng, runOp } from './harness.ts';

type Args = HostArgs<'apply_penalties'>;

interface Row {
  prompt: number[];
  output: number[];
  banned: number[];
  repetition: number;
  frequency: number;
  presence: number;
}

/** Rows padded with -1 to the widest list of each kind. */
function penaltyArgs(logits: ArrayLike<number>, v: number, rows: Row[]): Args {
  const n = rows.length;
  const pad = (lists: number[][]) => {
    const w = Math.max(0, ...lists.map((l) => l.length));
    return { values: lists.flatMap((l) => [...l, ...new Array(w - l.length).fill(-1)]), w };
  };
  const p = pad(rows.map((r) => r.prompt));
  const o = pad(rows.map((r) => r.output));
  const b = pad(rows.map((r) => r.banned));
  return {
    logits: host(logits, [n, v]),
    promptIds: host(p.values, [n, p.w], 'i32'),
    outputIds: host(o.values, [n, o.w], 'i32'),
    repetition: host(rows.map((r) => r.repetition), [n]),
    frequency: host(rows.map((r) => r.frequency), [n]),
    presence: host(rows.map((r) => r.presence), [n]),
    bannedIds: host(b.values, [n, b.w], 'i32'),
  };
}

/**
 * Untouched logits bit for bit; touched ones within a few ulps of the operands (WGSL's division
 * is not correctly rounded, and a GPU compiler may fuse l - f * count into one fma).
 */
function expectParity(got: ArrayLike<number>, want: ArrayLike<number>, input: ArrayLike<number>, what: string): void {
  expect(got.length).toBe(want.length);
  const bad: string[] = [];
  for (let j = 0; j < want.length; j++) {
    const exact = want[j] === input[j] || !Number.isFinite(want[j]);
    const ok = exact ? Object.is(got[j], want[j]) : Math.abs(got[j] - want[j]) <= 2.5e-7 * (Math.abs(want[j]) + 4 * Math.abs(input[j]));
    if (!ok) bad.push(`[${j}] got ${got[j]}, want ${want[j]} (input ${input[j]})`);
  }
  expect(bad, `${what}: ${bad.length} logits differ`).toEqual([]);
}

describe.each(backendsUnderTest())('%s backend: apply_penalties', (backend) => {
  let dev: Device;
  beforeAll(async () => {
    dev = await openBackend(backend);
  });
  afterAll(() => dev?.destroy());
  const r = rng(SEED ^ 0x5eed);

  it("vLLM's semantics on a worked row; a row with every penalty off is untouched", async () => {
    const row = [2, -1, 0.5, 3, -2, 1, 0, 4];
    const ids = { prompt: [0, 1, 1, -1], output: [1, 3, -1, 3, 6], banned: [7, -1] };
    const args = penaltyArgs([...row, ...row], 8, [
      { ...ids, repetition: 2, frequency: 0.5, presence: 0.25 },
      { ...ids, banned: [-1], repetition: 1, frequency: 0, presence: 0 },
    ]);
    const got = await runOp(dev, 'apply_penalties', args);
    // 0: prompt, > 0: 2 / 2. 1: prompt and once in the output: -1 * 2 - 0.5 - 0.25.
    // 3: twice in the output: 3 / 2 - 0.5 * 2 - 0.25. 6: once in the output, 0 <= 0: 0 * 2 - 0.5 - 0.25.
    // 7: banned. The rest are in no list.
    expect(Array.from(got.logits).slice(0, 8)).toEqual([1, -2.75, 0.5, 0.25, -2, 1, -0.75, -Infinity]);
    expect(Array.from(got.logits).slice(8)).toEqual(row);
  });

  it.each([
    // rows, vocab, prompt width, output width, banned width, id pool (small: many duplicates)
    [6, 1000, 50, 30, 3, 60],
    [3, 32000, 700, 300, 2, 5000],
    [9, 257, 0, 12, 0, 40], // no prompt and no banned ids: widths of 0
    [4, 128256, 2048, 512, 4, 128256],
  ])('parity: %i rows of %i, prompt %i, output %i, banned %i, ids from %i', async (n, v, wp, wo, wb, pool) => {
    const logits = normal(r, n * v, 3);
    const id = () => Math.floor(r() * pool);
    // an id list: duplicates from the small pool, padding anywhere, now and then an id out of range
    const list = (w: number) =>
      Array.from({ length: Math.floor(w * (0.5 + r() / 2)) }, () => {
        const u = r();
        return u < 0.1 ? -1 : u < 0.12 ? v + Math.floor(r() * 5) : id();
      });
    const rows: Row[] = Array.from({ length: n }, (_, i) => {
      const output = list(wo);
      // prompt ids shared with the output, so both repetition sources meet on one token
      const prompt = [...list(wp), ...output.slice(0, Math.min(wp > 0 ? 5 : 0, output.length))].slice(0, wp);
      const off = i % 3 === 2;
      return {
        prompt,
        output,
        banned: off ? [] : list(wb),
        repetition: off ? 1 : i % 3 === 1 ? 1 : 1 + r(), // row 1 of 3: frequency and presence only
        frequency: off ? 0 : r() < 0.5 ? -0.5 + r() : r(),
        presence: off ? 0 : r() * 2 - 1,
      };
    });
    const args = penaltyArgs(logits, v, rows);
    expect([args.promptIds!.shape[1] === 0, args.bannedIds!.shape[1] === 0]).toEqual([wp === 0, wb === 0]);
    const got = await runOp(dev, 'apply_penalties', args);
    const want = await reference('apply_penalties', args);
    const input = Float32Array.from(logits);
    for (let i = 0; i < n; i++) {
      const [g, w, x] = [got.logits, want.logits, input].map((a) => Array.prototype.slice.call(a, i * v, (i + 1) * v) as number[]);
      if (i % 3 === 2) expect(g.every((y, j) => Object.is(y, x[j])), `row ${i} has every penalty off`).toBe(true);
      expectParity(g, w, x, `row ${i}`);
    }
  });

  it('leaves its scratch clean: the same call twice gives the same logits', async () => {
    const [n, v] = [5, 3000];
    const logits = normal(r, n * v, 2);
    const rows: Row[] = Array.from({ length: n }, () => ({
      prompt: Array.from({ length: 40 }, () => Math.floor(r() * 100)),
      output: Array.from({ length: 40 }, () => Math.floor(r() * 100)),
      banned: [Math.floor(r() * v)],
      repetition: 1.3,
      frequency: 0.2,
      presence: 0.1,
    }));
    const args = penaltyArgs(logits, v, rows);
    const first = await runOp(dev, 'apply_penalties', args);
    const second = await runOp(dev, 'apply_penalties', args);
    const want = await reference('apply_penalties', args);
    expectParity(first.logits, want.logits, Float32Array.from(logits), 'first call');
    expect(Array.from(second.logits)).toEqual(Array.from(first.logits));
  });
});

// matmul_gemv_rows in launch shapes the planner does not choose (the ones bench/lab-gemv.ts
// sweeps): each path of the kernel (k staged in workgroup memory or not, one or several lane
// groups along k, one or two steps of loads in flight, k split over workgroups by a count that
// does not divide it) against the CPU reference. On an adapter without subgroups (llvmpipe) the
// lanes meet in workgroup memory; on the GPU machine the same shapes run the subgroup path.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDevice, fromArray, toArray } from '../../src/device/index.ts';
import type { WebGpuDevice } from '../../src/device/webgpu/backend.ts';
import { type GemvRowsShape, gemvRowsShape, planGemvRows } from '../../src/device/webgpu/matmul.ts';
import { SEED, backendsUnderTest, host, normal, output, reference, relErr, rng } from './harness.ts';

const SHAPES: GemvRowsShape[] = [
  { G: 8, SLOTS: 4, KS: 4, U: 2, splits: 1, stage: false },
  { G: 32, SLOTS: 1, KS: 4, U: 1, splits: 1, stage: false },
  { G: 4, SLOTS: 8, KS: 1, U: 2, splits: 1, stage: false },
  { G: 8, SLOTS: 2, KS: 8, U: 2, splits: 3, stage: false },
  { G: 8, SLOTS: 4, KS: 4, U: 1, splits: 1, stage: true },
  { G: 16, SLOTS: 2, KS: 2, U: 2, splits: 2, stage: true },
];
const label = (s: GemvRowsShape) => `G ${s.G}, ${s.SLOTS} quads, KS ${s.KS}, U ${s.U}, split ${s.splits}${s.stage ? ', a staged' : ''}`;

describe.runIf(backendsUnderTest().includes('webgpu'))('webgpu backend: matmul_gemv_rows launch shapes', () => {
  let dev: WebGpuDevice;
  beforeAll(async () => {
    dev = (await createDevice('webgpu')) as WebGpuDevice;
  });
  afterAll(() => dev?.destroy());
  const r = rng(SEED ^ 0x6e6d);

  it.each(SHAPES.flatMap((s) => [1, 3, 16].map((m) => [label(s), m, s] as const)))('%s, %i rows', async (_, m, shape) => {
    // n: 64 whole quads and 3 columns; k: 131 chunks of 8, a prime, so no split or lane count divides it
    const [n, k] = [1031, 1048];
    const withBias = m !== 3;
    const a = normal(r, m * k);
    const w = normal(r, n * k, 1 / Math.sqrt(k));
    const bias = normal(r, n);
    const ta = fromArray(dev, a, [m, k], 'f32');
    const tw = fromArray(dev, w, [n, k], 'f16');
    const tb = withBias ? fromArray(dev, bias, [n], 'f32') : undefined;
    const to = fromArray(dev, new Float64Array(m * n).fill(NaN), [m, n], 'f32');
    const s = dev.stream();
    const plan = planGemvRows(dev, { a: ta, w: tw, bias: tb, out: to }, shape);
    // staging 16 rows of a in 32 KiB splits k further than asked
    expect(plan.length).toBe(shape.splits > 1 || (shape.stage && m === 16) ? 2 : 1);
    for (const d of plan) s.dispatch(d);
    await s.submit().done();
    const want = await reference('matmul', { a: host(a, [m, k]), w: host(w, [n, k], 'f16'), bias: withBias ? host(bias, [n]) : undefined, out: output([m, n]) });
    expect(relErr(await toArray(dev, to), want.out)).toBeLessThan(1e-5);
    for (const t of [ta, tw, tb, to]) if (t) dev.free(t.buffer);
  });

  it('the planner splits k only for narrow layers with deep k', () => {
    expect(gemvRowsShape(16, 4096, 4096).splits).toBe(1);
    expect(gemvRowsShape(1, 4096, 11008).splits).toBe(1);
    expect(gemvRowsShape(3, 100, 4096).splits).toBe(4);
    expect(gemvRowsShape(3, 100, 1024).splits).toBe(1);
  });
});

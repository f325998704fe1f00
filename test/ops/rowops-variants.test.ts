// Parity of every launch shape of the row-wise kernels that the planners in
// src/device/webgpu/rowops.ts can produce (the ones bench/lab-rowops.ts times, and the kernels
// before branch rowops that PARALLM_ROWOPS=old selects) with the CPU reference. The default
// shapes are covered by elementwise.test.ts through the op; here each shape is forced. Shapes
// that need subgroups run only where the adapter has them (the GPU machine).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpArgs, type Tensor, createDevice, fromArray, toArray } from '../../src/device/index.ts';
import type { WebGpuDevice } from '../../src/device/webgpu/backend.ts';
import type { Dispatch } from '../../src/device/webgpu/plan.ts';
import { type RmsNormShape, type RopeShape, type SiluShape, planRmsNorm, planRope, planSiluAndMul } from '../../src/device/webgpu/rowops.ts';
import { ropeCosSin } from '../../src/model/rope.ts';
import { SEED, host, normal, output, reference, relErr, rng, uniform } from './harness.ts';

const F32_TOL = 1e-5;

describe('webgpu row-op launch shapes', () => {
  let dev: WebGpuDevice;
  beforeAll(async () => {
    dev = (await createDevice('webgpu')) as WebGpuDevice;
  });
  afterAll(() => dev?.destroy());
  const r = rng(SEED ^ 0x5eed);

  async function run(plan: Dispatch[], read: Tensor[]): Promise<Float32Array[]> {
    // a raw dispatch of the planned kernels (WebGpuStream.dispatch; not on the Device interface)
    const s = dev.stream() as ReturnType<WebGpuDevice['stream']> & { dispatch(d: Dispatch): unknown };
    for (const d of plan) s.dispatch(d);
    await s.submit().done();
    return Promise.all(read.map(async (t) => (await toArray(dev, t)) as Float32Array));
  }

  it.for([
    // rows, hidden, weight, residual, in place, shape
    [7, 1024, 'f16', true, false, { kernels: 'old' }],
    [7, 1030, 'f32', false, false, { kernels: 'old' }],
    [37, 1024, 'f16', true, false, { maxWorkgroups: 5 }],
    [37, 1024, 'bf16', true, true, { maxWorkgroups: 5, pipeline: true }],
    [37, 1024, 'f32', false, false, { maxWorkgroups: 6, pipeline: true }],
    [9, 770, 'f32', true, false, { maxWorkgroups: 2, pipeline: true }], // scalar rows, striding
    [5, 4096, 'f16', true, false, { wg: 128, vpt: 8 }],
    [5, 4096, 'f16', true, false, { wg: 1024, vpt: 1 }],
    [5, 4100, 'f16', true, false, { wg: 512, vpt: 3 }], // the last thread's vec4s past the row
    [6, 4096, 'f16', true, false, { subgroups: true }],
    [37, 1024, 'f16', true, false, { subgroups: true, maxWorkgroups: 5, pipeline: true }],
    [5, 1030, 'bf16', true, false, { subgroups: true, wg: 96 }], // scalar, subgroups of a part-filled workgroup
  ] as [number, number, 'f32' | 'f16' | 'bf16', boolean, boolean, RmsNormShape][])('rms_norm: %i rows of %i, %s weight, residual %s, in place %s, %j', async ([n, h, wdt, withRes, inPlace, shape], ctx) => {
    if (shape.subgroups && !dev.info.features.subgroups) ctx.skip('this adapter has no subgroups');
    const xv = normal(r, n * h, 3);
    const wv = uniform(r, h, 0.5, 1.5);
    const rv = normal(r, n * h);
    const x = fromArray(dev, xv, [n, h], 'f32');
    const weight = fromArray(dev, wv, [h], wdt);
    const out = inPlace ? x : fromArray(dev, new Float64Array(n * h).fill(NaN), [n, h], 'f32');
    const residual = withRes ? fromArray(dev, rv, [n, h], 'f32') : undefined;
    const args: OpArgs['rms_norm'] = { x, weight, out, residual, eps: 1e-5 };
    const [got, gotRes] = await run(planRmsNorm(dev, args, shape), residual ? [out, residual] : [out]);
    const want = await reference('rms_norm', { x: host(xv, [n, h]), weight: host(wv, [h], wdt), out: output([n, h]), residual: withRes ? host(rv, [n, h]) : undefined, eps: 1e-5 });
    expect(relErr(got, want.out)).toBeLessThan(F32_TOL);
    if (withRes) expect(relErr(gotRes, want.residual)).toBeLessThan(F32_TOL);
  });

  it.each([
    // tokens, heads, head size, width, rot, interleaved, shape
    [9, 12, 128, 12 * 128 + 256, 128, false, { kernels: 'old' }],
    [9, 12, 128, 12 * 128 + 256, 128, false, { ipt: 1 }],
    [9, 12, 128, 12 * 128 + 256, 128, false, { ipt: 2 }],
    [9, 40, 128, 40 * 128, 128, false, { ipt: 3 }], // 40 heads: the last workgroup's slots past them
    [9, 12, 128, 12 * 128, 128, false, { maxTokenGroups: 4 }],
    [5, 3, 256, 3 * 256, 256, false, { wg: 16 }], // 32 vec4 groups per half over 16 threads
    [5, 3, 6, 20, 6, false, { wg: 64 }], // scalar: 3 pairs, 21 heads a pass, one thread spare
    [5, 3, 256, 3 * 256 + 2, 256, false, { wg: 64 }], // scalar (width not a multiple of 4): 128 pairs over 64 threads
    [5, 4, 16, 64, 16, true, { ipt: 2, maxTokenGroups: 2 }],
  ] as [number, number, number, number, number, boolean, RopeShape][])('rope: %i tokens, %i heads of %i in rows of %i, rot %i, interleaved %s, %j', async (n, heads, hs, width, rot, interleaved, shape) => {
    const maxPos = 4096;
    const pv = Int32Array.from({ length: n }, () => 1 + Math.floor(r() * (maxPos - 1)));
    const invFreq = Float32Array.from({ length: rot / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / rot));
    const table = ropeCosSin(invFreq, maxPos);
    const xv = normal(r, n * width);
    const x = fromArray(dev, xv, [n, width], 'f32');
    const args: OpArgs['rope'] = { x, positions: fromArray(dev, pv, [n], 'i32'), cosSin: fromArray(dev, table, [maxPos, rot], 'f32'), numHeads: heads, headSize: hs, interleaved };
    const [got] = await run(planRope(dev, args, shape), [x]);
    const want = await reference('rope', { x: host(xv, [n, width]), positions: host(pv, [n], 'i32'), cosSin: host(table, [maxPos, rot]), numHeads: heads, headSize: hs, interleaved });
    expect(relErr(got, want.x)).toBeLessThan(F32_TOL);
  });

  it.each([
    [5, 2752, { kernels: 'old' }],
    [5, 173, { kernels: 'old' }],
    [5, 2752, { u: 1 }],
    [5, 2752, { u: 4 }],
    [5, 2752, { u: 4, maxColumnGroups: 1 }], // a workgroup strides along its row
    [7, 1000, { u: 2, maxColumnGroups: 1, maxRowGroups: 3 }], // and over rows
    [7, 173, { u: 3, wg: 32 }], // scalar
  ] as [number, number, SiluShape][])('silu_and_mul: %i rows of %i, %j', async (n, inter, shape) => {
    const xv = normal(r, n * 2 * inter, 2);
    const x = fromArray(dev, xv, [n, 2 * inter], 'f32');
    const out = fromArray(dev, new Float64Array(n * inter).fill(NaN), [n, inter], 'f32');
    const [got] = await run(planSiluAndMul(dev, { x, out }, shape), [out]);
    const want = await reference('silu_and_mul', { x: host(xv, [n, 2 * inter]), out: output([n, inter]) });
    expect(relErr(got, want.out)).toBeLessThan(F32_TOL);
  });
});

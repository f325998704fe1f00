// matmul_gemv_rows in launch shapes the planner does not choose (the ones bench/lab-gemv.ts
// sweeps): each path of the kernel (k staged in workgroup memory or not, one or several lane
// groups along k, one or two steps of loads in flight, k split over workgroups by a count that
// does not divide it) against the CPU reference. On an adapter without subgroups (llvmpipe) the
// lanes meet in workgroup memory; on the GPU machine the same shapes run the subgroup path.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VARIANTS } from '../../bench/lab-gemv-variants.ts';
import { createDevice, empty } from '../../src/device/index.ts';
import type { GpuContext } from '../../src/device/webgpu/adapter.ts';
import { WebGpuDevice } from '../../src/device/webgpu/backend.ts';
import { type GemvRowsShape, gemvRowsShape, gemvRowsUnfit, planGemvRows } from '../../src/device/webgpu/matmul.ts';
import { SEED, backendsUnderTest, rng } from './harness.ts';
import { planParity } from './plan-parity.ts';

const SHAPES: GemvRowsShape[] = [
  { G: 8, SLOTS: 4, KS: 4, U: 2, splits: 1, stage: false },
  { G: 32, SLOTS: 1, KS: 4, U: 1, splits: 1, stage: false },
  { G: 4, SLOTS: 8, KS: 1, U: 2, splits: 1, stage: false },
  { G: 8, SLOTS: 2, KS: 8, U: 2, splits: 3, stage: false },
  { G: 8, SLOTS: 4, KS: 4, U: 1, splits: 1, stage: true },
  { G: 16, SLOTS: 2, KS: 2, U: 2, splits: 2, stage: true },
  { G: 8, SLOTS: 16, KS: 1, U: 2, splits: 1, stage: true },
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
    const { dispatches, err } = await planParity(dev, r, m, [1031, 1048], m !== 3, (args) => planGemvRows(dev, args, shape));
    // staging 16 rows of a in 32 KiB splits k further than asked
    expect(dispatches.length).toBe(shape.splits > 1 || (shape.stage && m === 16) ? 2 : 1);
    expect(err).toBeLessThan(1e-5);
  });

  it('the planner splits k only for narrow layers with deep k', () => {
    expect(gemvRowsShape(16, 4096, 4096).splits).toBe(1);
    expect(gemvRowsShape(1, 4096, 11008).splits).toBe(1);
    expect(gemvRowsShape(3, 100, 4096).splits).toBe(4);
    expect(gemvRowsShape(3, 100, 1024).splits).toBe(1);
  });
});

// CI has no GPU, and llvmpipe no subgroups: Dawn's null adapter (no execution) has them, so the
// subgroup path of every shape the lab times goes through Tint's validation and pipeline
// creation here, and a broken one fails before the GPU run rather than during it.
describe.runIf(backendsUnderTest().includes('webgpu'))('matmul_gemv_rows with subgroups on Dawn\'s null adapter', () => {
  let dev: WebGpuDevice | undefined;
  beforeAll(async () => {
    await createDevice('webgpu').then((d) => d.destroy()); // loads Dawn and its globals
    const { create } = (await import('webgpu')) as any;
    const gpu: GPU = create(['backend=null']);
    const adapter = await gpu.requestAdapter();
    if (!adapter?.features.has('subgroups')) return;
    const device = await adapter.requestDevice({ requiredFeatures: ['subgroups'] });
    const errors: string[] = [];
    device.addEventListener('uncapturederror', (e: any) => errors.push(String(e.error?.message ?? e)));
    // the null adapter's subgroups are 4 to 128 wide; plan as for a GPU with 32-wide subgroups
    const info = { vendor: 'dawn', architecture: '', device: '', description: 'null adapter', subgroupMinSize: 32, subgroupMaxSize: 32 };
    const asGpu = { info, features: adapter.features, limits: adapter.limits } as unknown as GPUAdapter;
    const ctx: GpuContext = { gpu, adapter: asGpu, device, backend: 'vulkan', features: new Set(['subgroups', 'timestamp-query']), subgroupMatrix: false, errors };
    dev = new (WebGpuDevice as any)(ctx, {}) as WebGpuDevice;
  });
  afterAll(() => dev?.destroy());

  it('compiles and binds every lab variant at 1 to 16 rows', async (t) => {
    if (!dev) return t.skip('this Dawn build has no null adapter with subgroups');
    const [n, k] = [1031, 4104];
    const w = empty(dev, [n, k], 'f16');
    const bias = empty(dev, [n], 'f32');
    let launched = 0;
    for (const m of [1, 2, 3, 4, 7, 8, 9, 15, 16]) {
      const a = empty(dev, [m, k], 'f32');
      const out = empty(dev, [m, n], 'f32');
      for (const { shape } of [...VARIANTS, { shape: gemvRowsShape(m, n, k) }]) {
        if (gemvRowsUnfit(dev, m, shape)) continue;
        const plan = planGemvRows(dev, { a, w, bias, out }, shape);
        expect(plan[0].flags).toContain('SUBGROUPS');
        const s = dev.stream();
        for (const d of plan) s.dispatch(d);
        await s.submit().done(); // throws with Dawn's messages on an invalid shader or binding
        launched++;
      }
    }
    expect(launched).toBeGreaterThan(9 * VARIANTS.length * 0.8);
  });
});

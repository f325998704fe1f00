// The row-op kernels' subgroup paths compile. llvmpipe has no subgroups, so the parity suite
// runs them only on the GPU machine; Dawn's null backend (no GPU, no execution) has the feature
// and runs Tint's full WGSL validation, uniformity analysis included, when a pipeline is made.
// Every launch shape the planners produce with subgroups is compiled here.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DType, Tensor } from '../../src/device/index.ts';
import { KernelCache } from '../../src/device/webgpu/kernels.ts';
import type { WebGpuDevice } from '../../src/device/webgpu/backend.ts';
import type { Dispatch } from '../../src/device/webgpu/plan.ts';
import { planRmsNorm } from '../../src/device/webgpu/rowops.ts';

describe('row-op kernels with subgroups compile (Dawn null backend)', () => {
  let device: GPUDevice;
  let kernels: KernelCache;
  let planner: WebGpuDevice;
  let gpu: GPU | undefined;
  beforeAll(async () => {
    const { create, globals } = (await import('webgpu')) as any;
    for (const [k, v] of Object.entries(globals as Record<string, unknown>)) if (!(k in globalThis)) (globalThis as any)[k] = v;
    gpu = create(['backend=null']) as GPU;
    const adapter = (await gpu.requestAdapter()) as GPUAdapter;
    const l = adapter.limits;
    device = await adapter.requestDevice({
      requiredFeatures: ['subgroups', 'shader-f16'],
      requiredLimits: { maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup, maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX },
    });
    kernels = new KernelCache(device);
    // what the planners read of a device
    planner = { gpu: device, info: { features: { subgroups: true } } } as unknown as WebGpuDevice;
  });
  afterAll(() => {
    device?.destroy();
    gpu = undefined;
  });

  // the planners look at shapes, dtypes and buffer identity only
  let id = 1;
  const t = (shape: number[], dtype: DType = 'f32'): Tensor => ({ buffer: { id: id++ } as Tensor['buffer'], offset: 0, shape, dtype });

  async function compile(plan: Dispatch[]): Promise<string | undefined> {
    device.pushErrorScope('validation');
    for (const d of plan) kernels.get(d.file, d.flags, d.overrides);
    return (await device.popErrorScope())?.message;
  }

  it.each([
    // rows, hidden, weight dtype, residual, in place, shape
    [4, 4096, 'f16', true, false, {}],
    [4, 4096, 'bf16', false, true, {}],
    [4, 5001, 'f32', true, false, {}],
    [4, 16384, 'f16', true, false, {}],
    [4, 4096, 'f16', true, false, { maxWorkgroups: 2, pipeline: true }],
    [4, 4096, 'f16', true, true, { wg: 128, vpt: 8 }], // (this adapter allows 256 threads a workgroup)
    [4, 770, 'f32', false, false, { wg: 96, maxWorkgroups: 2, pipeline: true }],
  ] as const)('rms_norm: %i rows of %i, %s weight, residual %s, in place %s, %j', async (n, h, wdt, withRes, inPlace, shape) => {
    const x = t([n, h]);
    const plan = planRmsNorm(planner, { x, weight: t([h], wdt), out: inPlace ? x : t([n, h]), residual: withRes ? t([n, h]) : undefined, eps: 1e-5 }, shape);
    expect(plan[0].flags).toContain('SUBGROUPS');
    expect(await compile(plan)).toBeUndefined();
  });

  it('a broken kernel does fail here', async () => {
    const x = t([4, 4096]);
    const plan = planRmsNorm(planner, { x, weight: t([4096]), out: t([4, 4096]), eps: 1e-5 });
    // without its VPT override the register arrays have no constant size
    expect(await compile([{ ...plan[0], overrides: { WG: 256 } }])).toMatch(/override-sized arrays/);
  });
});

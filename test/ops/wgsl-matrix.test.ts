// The subgroup-matrix kernels compile. llvmpipe has no subgroup matrices, so the parity suite
// runs them only on the GPU machine; Dawn's null backend (no GPU, no execution) has the feature
// and runs Tint's full validation, uniformity analysis included, when a pipeline is made. Its
// workgroup memory limit is WebGPU's default 16 KiB, under what these kernels use on a GPU
// (the device asks for the adapter's limit): such a shape must fail on that limit alone, after
// its WGSL has been validated.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MMA_PREFILL_BYTES } from '../../src/device/webgpu/attention.ts';
import { KernelCache } from '../../src/device/webgpu/kernels.ts';
import { type GemvMmaShape, gemvMmaSharedBytes } from '../../src/device/webgpu/matmul.ts';

describe('subgroup-matrix kernels compile (Dawn null backend)', () => {
  let device: GPUDevice | undefined;
  let kernels: KernelCache;
  let gpu: GPU | undefined;
  beforeAll(async () => {
    const { create, globals } = (await import('webgpu')) as any;
    for (const [k, v] of Object.entries(globals as Record<string, unknown>)) if (!(k in globalThis)) (globalThis as any)[k] = v;
    gpu = create(['backend=null', 'enable-dawn-features=allow_unsafe_apis']) as GPU;
    const adapter = (await gpu.requestAdapter()) as GPUAdapter;
    const feature = 'chromium-experimental-subgroup-matrix' as GPUFeatureName;
    if (!adapter.features.has(feature)) return;
    // the adapter's storage buffers per stage: the attention kernels bind a split KV pool's parts
    const requiredLimits = { maxStorageBuffersPerShaderStage: adapter.limits.maxStorageBuffersPerShaderStage };
    device = await adapter.requestDevice({ requiredFeatures: ['subgroups', 'shader-f16', feature], requiredLimits });
    kernels = new KernelCache(device);
  });
  afterAll(() => {
    device?.destroy();
    gpu = undefined;
  });

  /** The errors of compiling one pipeline, caught by error scopes (no event can arrive late). */
  async function compile(file: string, flags: string[], overrides: Record<string, number>): Promise<string[]> {
    const dev = device!;
    dev.pushErrorScope('validation');
    dev.pushErrorScope('internal');
    const thrown: string[] = [];
    try {
      kernels.get(file, flags, overrides);
    } catch (e) {
      thrown.push(String((e as Error).message ?? e));
    }
    const internal = await dev.popErrorScope();
    const validation = await dev.popErrorScope();
    return [...thrown, ...[validation, internal].filter((e): e is GPUError => !!e).map((e) => e.message)];
  }

  // every (CF, SUB, row tiles) whose share of a fits the kernel's 8 loads a thread
  const shapes: [GemvMmaShape['CF'], GemvMmaShape['SUB'], number][] = [];
  for (const [CF, SUB] of [[1, 1], [2, 1], [4, 1], [2, 2], [4, 2]] as const) {
    for (const RT of [1, 2, 3, 4]) if ((16 * RT * 64 * SUB * (4 / CF)) / 512 <= 8) shapes.push([CF, SUB, RT]);
  }
  it.for(shapes.flatMap(([CF, SUB, RT]) => [[CF, SUB, RT, true], [CF, SUB, RT, false]] as const))('matmul_gemv_mma: CF %i, SUB %i, %i row tiles, bias %s', async ([CF, SUB, RT, bias], ctx) => {
    if (!device) return ctx.skip('no subgroup matrices on the null adapter');
    const errors = await compile('matmul_gemv_mma.wgsl', bias ? ['BIAS'] : [], { RT, CF, SUB });
    const limit = device.limits.maxComputeWorkgroupStorageSize;
    const bytes = gemvMmaSharedBytes({ CF, SUB }, 16 * RT);
    if (bytes <= limit) expect(errors).toEqual([]);
    else {
      expect(errors.length).toBe(1);
      expect(errors[0]).toMatch(new RegExp(`workgroup storage \\(${bytes} bytes\\) is larger than the maximum allowed \\(${limit} bytes\\)`));
    }
  });

  // it includes the same staging helpers (lib/f16_tiles.wgsl); 24 KiB of tiles, over the null adapter's limit
  it.for([[], ['BIAS']])('matmul_sgmat, flags [%s]', async (flags, ctx) => {
    if (!device) return ctx.skip('no subgroup matrices on the null adapter');
    const errors = await compile('matmul_sgmat.wgsl', flags, {});
    const limit = device.limits.maxComputeWorkgroupStorageSize;
    if (limit >= 24 * 1024) expect(errors).toEqual([]);
    else {
      expect(errors.length).toBe(1);
      expect(errors[0]).toMatch(/workgroup storage \(\d+ bytes\) is larger than the maximum allowed/);
    }
  });

  // ~45 KiB of tiles, over the null adapter's 16 KiB; a pool in parts binds more storage buffers
  // than its 8. Each refusal must be one of those limits, after the WGSL was validated.
  it.for([[], ['KV_F16'], ['KV_F16', 'KV_PARTS_2'], ['KV_F16', 'KV_PARTS_2', 'KV_PARTS_3', 'KV_PARTS_4']])('prefill_attention_mma, flags [%s]', async (flags, ctx) => {
    if (!device) return ctx.skip('no subgroup matrices on the null adapter');
    const errors = await compile('prefill_attention_mma.wgsl', flags, {});
    const limits = device.limits;
    const buffers = 7 + 2 * flags.filter((f) => f.startsWith('KV_PARTS_')).length;
    const over = [
      ...(MMA_PREFILL_BYTES > limits.maxComputeWorkgroupStorageSize ? [/workgroup storage \(\d+ bytes\) is larger than the maximum allowed/] : []),
      ...(buffers > limits.maxStorageBuffersPerShaderStage ? [new RegExp(`number of storage buffers \\(${buffers}\\) in the Compute stage exceeds`)] : []),
    ];
    expect(errors.length).toBe(over.length > 0 ? 1 : 0);
    for (const e of errors) expect(over.some((re) => re.test(e))).toBe(true);
  });

  it('matmul_gemv_mma refuses to compile a shape whose share of a is over 8 loads a thread', async (ctx) => {
    if (!device) return ctx.skip('no subgroup matrices on the null adapter');
    expect((await compile('matmul_gemv_mma.wgsl', [], { RT: 2, CF: 1, SUB: 1 })).join('\n')).toMatch(/const_assert/);
  });

  it.for([1, 2].flatMap((U) => [1, 5, 16].map((ROWS) => [U, ROWS] as const)))('lab/gemv_mma_direct: U %i, %i rows', async ([U, ROWS], ctx) => {
    if (!device) return ctx.skip('no subgroup matrices on the null adapter');
    expect(await compile('lab/gemv_mma_direct.wgsl', [], { ROWS, U })).toEqual([]);
  });
});

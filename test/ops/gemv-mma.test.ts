// matmul_gemv_mma in launch shapes the planner may not choose (the ones bench/lab-gemv.ts
// sweeps): 16, 32 or 64 columns per workgroup, one or two 64-deep sub-steps a phase, k split
// over workgroups by a count that does not divide it, against the CPU reference. It needs
// subgroup matrices: on the GPU machine only (llvmpipe has none; test/ops/wgsl-matrix.test.ts
// compiles it on Dawn's null backend in CI).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDevice } from '../../src/device/index.ts';
import type { WebGpuDevice } from '../../src/device/webgpu/backend.ts';
import { type GemvMmaShape, gemvMmaUnfit, planGemvMma } from '../../src/device/webgpu/matmul.ts';
import { SEED, backendsUnderTest, rng } from './harness.ts';
import { planParity } from './plan-parity.ts';

const SHAPES: GemvMmaShape[] = [
  { CF: 1, SUB: 1, splits: 1 },
  { CF: 2, SUB: 1, splits: 3 },
  { CF: 4, SUB: 1, splits: 2 },
  { CF: 2, SUB: 2, splits: 1 },
  { CF: 4, SUB: 2, splits: 5 },
];

describe.runIf(backendsUnderTest().includes('webgpu'))('webgpu backend: matmul_gemv_mma launch shapes', () => {
  let dev: WebGpuDevice;
  beforeAll(async () => {
    dev = (await createDevice('webgpu')) as WebGpuDevice;
  });
  afterAll(() => dev?.destroy());
  const r = rng(SEED ^ 0x6d6d);

  // a step's share of a (16 row-tiles x 16 rows) must fit 8 loads a thread: 16 RT x 64 SUB (4 / CF) / 512 <= 8
  const fits = (s: GemvMmaShape, m: number) => (16 * Math.ceil(m / 16) * 64 * s.SUB * (4 / s.CF)) / 512 <= 8;
  it.for(SHAPES.flatMap((s) => [1, 5, 16, 17, 33, 64].filter((m) => fits(s, m)).map((m) => [`${16 * s.CF} columns, SUB ${s.SUB}, split ${s.splits}`, m, s] as const)))('%s, %i rows', async ([, m, shape], ctx) => {
    if (!dev.info.features.subgroupMatrix) return ctx.skip('no subgroup matrices on this adapter');
    expect(gemvMmaUnfit(dev, m, shape)).toBeUndefined();
    // n: 64 whole fragments and 7 columns; k: 131 chunks of 8, so no step or split divides it
    const { err } = await planParity(dev, r, m, [1031, 1048], m !== 5, (args) => planGemvMma(dev, args, shape));
    // a rounded to f16, as sgmat does
    expect(err).toBeLessThan(1e-2);
  });
});

// Parity of matmul (every kernel variant the backend has) with the CPU reference, including
// odd shapes, every weight dtype, bias, and a weight split across bindings.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Device, MATMUL_KERNELS, type MatmulKernel, createDevice, fromArray, toArray } from '../../src/device/index.ts';
import { SEED, backendsUnderTest, host, normal, openBackend, output, reference, relErr, rng, runOp } from './harness.ts';

type Case = [m: number, n: number, k: number, wdt: 'f32' | 'f16' | 'bf16', bias: boolean];

const CASES: Record<MatmulKernel, Case[]> = {
  gemv: [
    [1, 256, 512, 'f16', false],
    [3, 100, 136, 'bf16', true],
    [16, 130, 64, 'f32', false],
    [7, 1031, 1024, 'f16', true],
  ],
  gemv_sg: [
    [1, 256, 512, 'f16', false],
    [2, 100, 136, 'bf16', true],
    [5, 33, 64, 'f32', false],
    [16, 1031, 1024, 'f16', true],
    [4, 4096, 4096, 'f16', false],
  ],
  // matmul_gemv_rows: 16 columns per workgroup, k split (and reduced) below 256 workgroups
  gemv_rows: [
    [1, 257, 520, 'f16', false],
    [3, 100, 136, 'bf16', true],
    [8, 1031, 1032, 'f16', true],
    [16, 37, 264, 'f32', false],
    [16, 1031, 1048, 'f16', true],
    [3, 100, 4096, 'f16', true], // split k 4, bias added by the reduce
    [16, 4099, 264, 'f16', false], // three columns past a whole number of workgroups
  ],
  // matmul_gemv_mma: 16 columns per workgroup, k in steps of 256 (four phases of 64), split k
  // (and reduced) below 256 workgroups where the chunks stay >= 1024 deep; f16 weights only
  gemv_mma: [
    [5, 256, 512, 'f16', false], // two whole steps
    [16, 1031, 1032, 'f16', true], // a partial last step (one 8-wide chunk) and 7 columns past a workgroup
    [8, 100, 4096, 'f16', true], // split k 4, bias added by the reduce
    [1, 130, 40, 'f16', false], // one row, k shorter than a phase
    [3, 33, 136, 'f16', true],
    [16, 4099, 264, 'f16', false], // three columns past a whole number of workgroups
    [40, 300, 520, 'f16', true], // three row tiles, the last partial
    [64, 200, 1032, 'f16', false], // four whole row tiles
  ],
  tiled: [
    [1, 3, 5, 'f32', false],
    [65, 70, 33, 'f16', true],
    [130, 257, 96, 'bf16', false],
    [200, 64, 300, 'f16', false],
  ],
  // matmul_sgmat: 128 x 128 tiles, k-slices of 32; split k below 528 workgroups where k >= 512
  sgmat: [
    [128, 128, 32, 'f16', false], // one whole tile
    [100, 144, 80, 'f16', true], // edge tiles in both dimensions
    [256, 512, 1024, 'f16', false], // whole tiles, split k
    [17, 48, 4096, 'f16', true], // split k 8, bias added by the reduce
    [64, 136, 40, 'f16', true], // k not a multiple of the 32-wide k-slice
    [130, 200, 200, 'f16', false],
    [1, 130, 40, 'f16', true], // a single row
    [17, 200, 264, 'f16', true], // every edge at once: rows, columns, a partial last k-slice
    [17, 4008, 4104, 'f16', false], // 8 columns past a tile, split k 8 with a partial last chunk and k-slice
    [129, 1032, 4104, 'f16', true], // one row and 8 columns past a tile, the same split
    [255, 256, 264, 'f16', true], // rows up to one short of two tiles, bias in the kernel
    [300, 136, 96, 'f16', true], // three row tiles, the last mostly empty
    [520, 2056, 64, 'f16', false], // 85 tiles, not split (k too short), edges in both dimensions
    [200, 1000, 2048, 'f16', true], // decode-batch rows, split k 8 over 16 tiles, bias by the reduce
  ],
};

describe.each(backendsUnderTest())('%s backend: matmul', (backend) => {
  let dev: Device;
  beforeAll(async () => {
    dev = await openBackend(backend);
  });
  afterAll(() => dev?.destroy());
  const r = rng(SEED ^ 0x5678);

  for (const kernel of MATMUL_KERNELS) {
    it.each(CASES[kernel])(`${kernel}: [%i, k] x [%i, k]^T, k = %i, %s weights, bias %s`, async (m, n, k, wdt, withBias) => {
      const args = {
        a: host(normal(r, m * k), [m, k]),
        w: host(normal(r, n * k, 1 / Math.sqrt(k)), [n, k], wdt),
        bias: withBias ? host(normal(r, n), [n]) : undefined,
        out: output([m, n]),
        kernel,
      };
      const probe = dev.supports('matmul', { a: fromArray(dev, [0], [1, 1], 'f32'), w: fromArray(dev, [0], [1, 1], 'f32'), out: fromArray(dev, [0], [1, 1], 'f32'), kernel });
      // (a backend without a kernel of its own for a gemv variant runs its gemv: native's gemv_mma)
      const f = dev.info.features;
      const needs = kernel === 'sgmat' ? f.subgroupMatrix : kernel === 'gemv_mma' ? backend !== 'webgpu' || f.subgroupMatrix : kernel === 'gemv_sg' ? f.subgroups : true;
      if (!needs) {
        // no subgroups / matrix units on this adapter (llvmpipe): the backend must say so, not run garbage
        expect(probe.ok).toBe(false);
        return;
      }
      const got = await runOp(dev, 'matmul', args);
      const want = await reference('matmul', args);
      // sgmat and gemv_mma round a to f16 (relative error ~5e-4 per product, averaging down over k)
      expect(relErr(got.out, want.out)).toBeLessThan(kernel === 'sgmat' || kernel === 'gemv_mma' ? 1e-2 : 1e-5);
    });
  }

  // the gemv kernels load 16 bytes of a weight row at a time: other k go to another kernel
  it('takes few rows with k not a multiple of 8, on another kernel than the gemv ones', async () => {
    const [m, n, k] = [3, 40, 13];
    const args = { a: host(normal(r, m * k), [m, k]), w: host(normal(r, n * k, 0.3), [n, k], 'f16'), bias: host(normal(r, n), [n]), out: output([m, n]) };
    const t = (shape: number[]) => fromArray(dev, new Array(shape[0] * shape[1]).fill(0), shape, 'f32');
    if (backend === 'webgpu') expect(dev.supports('matmul', { a: t([m, k]), w: t([n, k]), out: t([m, n]), kernel: 'gemv_rows' }).ok).toBe(false);
    const got = await runOp(dev, 'matmul', args);
    expect(relErr(got.out, (await reference('matmul', args)).out)).toBeLessThan(dev.info.features.subgroupMatrix ? 1e-2 : 1e-5);
  });

  // Each block writes its columns of out (col0, ldo); at 40 rows on a GPU with subgroup matrices
  // that is matmul_sgmat, whose f16 copy of a is padded to 128 rows and must fit one binding too.
  it.each([
    // a 64 KiB limit: w [300, 256] f16 (150 KiB) in blocks of 128 rows (128, 128, 44), one tile each
    [64, 256, [1, 40]],
    // a 128 KiB limit: k = 512, so matmul_sgmat splits k in 2 and the reduce writes the block's columns
    [128, 512, [40]],
  ] as [number, number, number[]][])('splits a weight larger than one binding into row blocks (%i KiB, k = %i)', async (kib, k, ms) => {
    const small = await createDevice(backend, { maxBindingBytes: kib * 1024 });
    try {
      for (const m of ms) {
        const n = 300;
        const a = normal(r, m * k);
        const w = normal(r, n * k, 0.1);
        const bias = normal(r, n);
        const ta = fromArray(small, a, [m, k], 'f32');
        const tw = fromArray(small, w, [n, k], 'f16');
        const tb = fromArray(small, bias, [n], 'f32');
        const to = fromArray(small, new Float64Array(m * n).fill(NaN), [m, n], 'f32');
        await small.stream().op('matmul', { a: ta, w: tw, bias: tb, out: to }).submit().done();
        const want = await reference('matmul', { a: host(a, [m, k]), w: host(w, [n, k], 'f16'), bias: host(bias, [n]), out: output([m, n]) });
        // the matrix units round a to f16: webgpu's past 16 rows, native's BLAS at every row count
        const rounded = small.info.features.subgroupMatrix && (backend === 'native' || m > 16);
        expect(relErr(await toArray(small, to), want.out)).toBeLessThan(rounded ? 1e-2 : 1e-5);
      }
    } finally {
      small.destroy();
    }
  });

  // binding limits are WebGPU's: native kernels take plain pointers and ignore maxBindingBytes
  it.skipIf(backend !== 'webgpu')('rejects a tensor over the binding limit that it cannot split, with a clear error', async () => {
    const small = await createDevice(backend, { maxBindingBytes: 16 * 1024 });
    try {
      const x = fromArray(small, normal(r, 8192), [8192], 'f32');
      const y = fromArray(small, normal(r, 8192), [8192], 'f32');
      expect(() => small.stream().op('copy', { x, out: y }).submit()).toThrow(/over this adapter's binding limit/);
    } finally {
      small.destroy();
    }
  });
});

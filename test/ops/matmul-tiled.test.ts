// Matmul weights in the webgpu backend's tiled layout (WebGpuDevice.tileWeight / packWeight):
// the layout itself against a host-side tiling (padding rows zero), every kernel that reads it
// against the CPU reference on the row-major weight, the kernels that cannot read it saying so,
// row blocks of a tiled weight under a small binding limit, and the rules that keep a packed
// tensor out of every other place (shared by all backends).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MatmulKernel, type Tensor, createDevice, fromArray, tileBits, toArray } from '../../src/device/index.ts';
import { CpuDevice } from '../../src/device/cpu/backend.ts';
import { rows, view } from '../../src/device/tensor.ts';
import type { WebGpuDevice } from '../../src/device/webgpu/backend.ts';
import { SEED, backendsUnderTest, host, normal, output, reference, relErr, rng } from './harness.ts';

// [m, n, k, bias]: k a multiple of 32 (the tile's k-slice); n past whole tiles of 128
type Case = [m: number, n: number, k: number, bias: boolean];
const CASES: [MatmulKernel, Case[]][] = [
  ['gemv_rows', [[1, 300, 544, false], [3, 100, 160, true], [8, 1031, 1056, true], [16, 4099, 288, false], [3, 100, 4096, true]]],
  ['gemv_sg', [[1, 256, 512, false], [5, 33, 64, true], [16, 1031, 1024, true]]],
  ['gemv_mma', [[5, 256, 512, false], [16, 1031, 1056, true], [8, 100, 4096, true], [40, 300, 544, true], [64, 200, 1056, false]]],
  ['sgmat', [[128, 128, 32, false], [100, 144, 96, true], [17, 200, 288, true], [255, 256, 288, true], [200, 1000, 2048, true], [129, 1032, 4128, false]]],
];

describe.skipIf(!backendsUnderTest().includes('webgpu'))('webgpu backend: matmul with tiled weights', () => {
  let dev: WebGpuDevice;
  beforeAll(async () => {
    dev = (await createDevice('webgpu')) as WebGpuDevice;
  });
  afterAll(() => dev?.destroy());
  const r = rng(SEED ^ 0x7113);

  it('tiles an f16 weight as the host does, padding the last tile with zero rows', async () => {
    for (const [n, k] of [[300, 96], [128, 32], [5, 64]]) {
      const w = fromArray(dev, normal(r, n * k), [n, k], 'f16');
      const t = dev.tileWeight(w);
      expect(t.layout).toBe('tiled');
      expect(t.shape).toEqual([n, k]);
      const nPad = Math.ceil(n / 128) * 128;
      const whole: Tensor = { buffer: t.buffer, offset: 0, shape: [nPad * k], dtype: 'f16' };
      const got = new Uint16Array((await dev.download(whole)).slice().buffer);
      const bits = new Uint16Array((await dev.download(w)).slice().buffer, 0, n * k);
      expect(Array.from(got)).toEqual(Array.from(tileBits(bits, n, k)));
      dev.free(w.buffer);
      dev.free(t.buffer);
    }
  });

  it('tiles only 2-D f16 weights with k a multiple of 32, and packWeight leaves the rest as they are', () => {
    const odd = fromArray(dev, normal(r, 40 * 40), [40, 40], 'f16');
    const f32 = fromArray(dev, normal(r, 64 * 64), [64, 64], 'f32');
    expect(() => dev.tileWeight(odd)).toThrow(/k % 32 == 0/);
    expect(() => dev.tileWeight(f32)).toThrow(/f16/);
    expect(dev.packWeight(odd)).toBe(odd);
    expect(dev.packWeight(f32)).toBe(f32);
    const w = fromArray(dev, normal(r, 64 * 64), [64, 64], 'f16');
    // packed where the adapter has subgroup matrices (only matmul_sgmat reads it past 64 rows)
    const p = dev.packWeight(w);
    expect(p.layout).toBe(dev.info.features.subgroupMatrix ? 'tiled' : undefined);
    for (const t of [odd, f32, w, p]) dev.free(t.buffer);
  });

  for (const [kernel, cases] of CASES) {
    it.each(cases)(`${kernel}: [%i, k] x tiled [%i, k]^T, k = %i, bias %s, equals the reference`, async (m, n, k, withBias) => {
      const f = dev.info.features;
      const can = kernel === 'sgmat' || kernel === 'gemv_mma' ? f.subgroupMatrix : kernel === 'gemv_sg' ? f.subgroups : true;
      const a = normal(r, m * k);
      const wv = normal(r, n * k, 1 / Math.sqrt(k));
      const bv = withBias ? normal(r, n) : undefined;
      const ta = fromArray(dev, a, [m, k], 'f32');
      const w = fromArray(dev, wv, [n, k], 'f16');
      const tw = dev.tileWeight(w);
      dev.free(w.buffer);
      const tb = bv ? fromArray(dev, bv, [n], 'f32') : undefined;
      const to = fromArray(dev, new Float64Array(m * n).fill(NaN), [m, n], 'f32');
      try {
        const args = { a: ta, w: tw, bias: tb, out: to, kernel };
        if (!can) {
          expect(dev.supports('matmul', args).ok).toBe(false);
          return;
        }
        await dev.stream().op('matmul', args).submit().done();
        const want = await reference('matmul', { a: host(a, [m, k]), w: host(wv, [n, k], 'f16'), bias: bv ? host(bv, [n]) : undefined, out: output([m, n]) });
        // sgmat and gemv_mma round a to f16, as with row-major weights (matmul.test.ts)
        expect(relErr(await toArray(dev, to), want.out)).toBeLessThan(kernel === 'sgmat' || kernel === 'gemv_mma' ? 1e-2 : 1e-5);
      } finally {
        for (const t of [ta, tw, to, ...(tb ? [tb] : [])]) dev.free(t.buffer);
      }
    });
  }

  it('gives bit-identical outputs from a tiled and a row-major weight on the same kernel', async () => {
    const [m, n, k] = [16, 300, 544];
    const ta = fromArray(dev, normal(r, m * k), [m, k], 'f32');
    const w = fromArray(dev, normal(r, n * k, 0.05), [n, k], 'f16');
    const tw = dev.tileWeight(w);
    const outs: Float32Array[] = [];
    for (const weight of [w, tw]) {
      const to = fromArray(dev, new Float64Array(m * n).fill(NaN), [m, n], 'f32');
      await dev.stream().op('matmul', { a: ta, w: weight, out: to, kernel: 'gemv_rows' }).submit().done();
      outs.push((await toArray(dev, to)) as Float32Array);
      dev.free(to.buffer);
    }
    expect(Array.from(outs[1])).toEqual(Array.from(outs[0]));
    for (const t of [ta, w, tw]) dev.free(t.buffer);
  });

  it('refuses a tiled weight on the kernels that read row-major weights only', () => {
    const ta = fromArray(dev, normal(r, 4 * 64), [4, 64], 'f32');
    const w = fromArray(dev, normal(r, 64 * 64), [64, 64], 'f16');
    const tw = dev.tileWeight(w);
    const to = fromArray(dev, new Float64Array(4 * 64), [4, 64], 'f32');
    for (const kernel of ['gemv', 'tiled'] as MatmulKernel[]) {
      const s = dev.supports('matmul', { a: ta, w: tw, out: to, kernel });
      expect(s.ok).toBe(false);
      expect(s.ok ? '' : s.reason).toMatch(/row-major weights only.*tiled/);
    }
    for (const t of [ta, w, tw, to]) dev.free(t.buffer);
  });

  // a 64 KiB binding limit: w [300, 256] f16 tiled is 3 tiles of 64 KiB each (the last padded),
  // bound one tile at a time
  it('splits a tiled weight larger than one binding into whole tiles of rows', async () => {
    const small = (await createDevice('webgpu', { maxBindingBytes: 64 * 1024 })) as WebGpuDevice;
    try {
      const [n, k] = [300, 256];
      const wv = normal(r, n * k, 0.1);
      const w = fromArray(small, wv, [n, k], 'f16');
      const tw = small.tileWeight(w);
      for (const m of small.info.features.subgroupMatrix ? [1, 40] : [1, 3]) {
        const a = normal(r, m * k);
        const ta = fromArray(small, a, [m, k], 'f32');
        const to = fromArray(small, new Float64Array(m * n).fill(NaN), [m, n], 'f32');
        await small.stream().op('matmul', { a: ta, w: tw, out: to }).submit().done();
        const want = await reference('matmul', { a: host(a, [m, k]), w: host(wv, [n, k], 'f16'), out: output([m, n]) });
        expect(relErr(await toArray(small, to), want.out)).toBeLessThan(m > 16 ? 1e-2 : 1e-5);
      }
    } finally {
      small.destroy();
    }
  });
});

describe('packed weights: the rules every backend shares', () => {
  const cpu = new CpuDevice();
  const packed = (shape: number[]): Tensor => ({ buffer: cpu.alloc(Math.ceil(shape[0] / 128) * 128 * shape[1] * 2), offset: 0, shape, dtype: 'f16', layout: 'tiled' });

  it('takes rows of a packed weight only in whole tiles, and no element views', () => {
    const t = packed([300, 64]);
    expect(rows(t, 128, 128)).toMatchObject({ offset: 128 * 64 * 2, shape: [128, 64], layout: 'tiled' });
    expect(rows(t, 256, 44)).toMatchObject({ shape: [44, 64], layout: 'tiled' }); // the last, partial tile
    expect(() => rows(t, 64, 64)).toThrow(/whole tiles of 128/);
    expect(() => rows(t, 0, 200)).toThrow(/whole tiles of 128/);
    expect(() => view(t, 0, [10, 64])).toThrow(/no element views/);
  });

  it("lets a packed tensor be matmul's w only, and only as f16", () => {
    const f = (shape: number[], dtype: 'f32' | 'f16' = 'f32') => fromArray(cpu, new Float64Array(shape.reduce((x, y) => x * y, 1)), shape, dtype);
    const w = packed([64, 64]);
    const s1 = cpu.supports('rms_norm', { x: f([2, 64]), weight: { ...packed([1, 64]), shape: [64] }, out: f([2, 64]), eps: 1e-5 });
    expect(s1.ok ? '' : s1.reason).toMatch(/weight is a packed \(tiled\) weight/);
    const s2 = cpu.supports('matmul', { a: w, w: f([64, 64], 'f16'), out: f([64, 64]) });
    expect(s2.ok ? '' : s2.reason).toMatch(/a is a packed \(tiled\) weight/);
    const s3 = cpu.supports('matmul', { a: f([2, 64]), w: { ...w, dtype: 'f32' }, out: f([2, 64]) });
    expect(s3.ok ? '' : s3.reason).toMatch(/must be f16/);
    // the cpu backend packs nothing, so no packed weight is its own
    const s4 = cpu.supports('matmul', { a: f([2, 64]), w, out: f([2, 64]) });
    expect(s4.ok ? '' : s4.reason).toMatch(/reads row-major weights only/);
  });
});

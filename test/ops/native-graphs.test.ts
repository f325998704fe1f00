// CUDA/HIP graphs of the native backend (GPU machine only): a repeated run of ops is captured on
// its second sighting and replayed from then on, and every run, eager, captured or replayed,
// computes what the CPU reference computes on that run's own inputs.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CpuDevice } from '../../src/device/cpu/backend.ts';
import { type Device, empty, fromArray } from '../../src/device/index.ts';
import type { NativeDevice } from '../../src/device/native/backend.ts';
import { SEED, backendsUnderTest, normal, relErr, rng, uniform } from './harness.ts';

/** Two "layers" of norm, matmul, silu_and_mul, matmul (10 launches) over the input rows. */
function program(dev: Device, n: number, h: number, inter: number, r: () => number) {
  const t = (shape: number[], values: ArrayLike<number>, dtype: 'f32' | 'f16' = 'f32') => fromArray(dev, values, shape, dtype);
  const w = [0, 1].map(() => ({
    norm: t([h], uniform(r, h, 0.5, 1.5)),
    up: t([2 * inter, h], normal(r, 2 * inter * h, 1 / Math.sqrt(h)), 'f16'),
    down: t([h, inter], normal(r, h * inter, 1 / Math.sqrt(inter)), 'f16'),
  }));
  const x = empty(dev, [n, h], 'f32');
  const xn = empty(dev, [n, h], 'f32');
  const gu = empty(dev, [n, 2 * inter], 'f32');
  const act = empty(dev, [n, inter], 'f32');
  const out = empty(dev, [n, h], 'f32');
  return {
    async run(input: Float32Array): Promise<Float32Array> {
      const s = dev.stream();
      s.write(x, input);
      for (const [i, l] of w.entries()) {
        s.op('rms_norm', { x: i ? out : x, weight: l.norm, out: xn, eps: 1e-5 });
        s.op('matmul', { a: xn, w: l.up, out: gu });
        s.op('silu_and_mul', { x: gu, out: act });
        s.op('matmul', { a: act, w: l.down, out });
        s.op('softmax', { x: out, out });
      }
      const got = s.read(out);
      await s.submit().done();
      const b = await got;
      return new Float32Array(b.buffer, b.byteOffset, n * h);
    },
  };
}

describe.runIf(backendsUnderTest().includes('native'))('native backend: graphs', () => {
  let dev: NativeDevice;
  beforeAll(async () => {
    const { NativeDevice } = await import('../../src/device/native/backend.ts');
    dev = await NativeDevice.open({ graphs: true });
  });
  afterAll(() => dev?.destroy());

  it('captures a repeated run on its second sighting, replays it after, and every run matches the reference', async () => {
    const [n, h, inter] = [4, 256, 384];
    const seed = SEED ^ 0x6a;
    const gpu = program(dev, n, h, inter, rng(seed));
    const cpu = program(new CpuDevice(), n, h, inter, rng(seed)); // the same weights
    const r = rng(seed ^ 1);
    for (let step = 0; step < 4; step++) {
      const input = Float32Array.from(normal(r, n * h, 2));
      const [got, want] = [await gpu.run(input), await cpu.run(input)];
      // with BLAS the matmuls round their activations to f16 (~2e-4 here); a bad replay is off by ~1
      expect(relErr(got, want), `step ${step}`).toBeLessThan(dev.info.features.subgroupMatrix ? 2e-3 : 1e-5);
    }
    expect(dev.graphStats).toEqual({ eager: 1, captured: 1, replayed: 2 });
  });

  it('a run whose shapes or pointers differ is not a hit', async () => {
    const before = { ...dev.graphStats };
    const p = program(dev, 3, 128, 256, rng(SEED ^ 0x6b));
    await p.run(Float32Array.from(normal(rng(1), 3 * 128)));
    expect(dev.graphStats.eager).toBe(before.eager + 1);
    expect(dev.graphStats.replayed).toBe(before.replayed);
  });
});

// matmul_splitk_reduce (the second launch of every split-k matmul) on its own: random partial
// products summed in float64 on the host, with and without bias, into a column block of a wider
// output whose other columns must keep their poison, in the vec4 path and the scalar one, for
// split counts around the kernel's unrolling by four.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDevice, fromArray, toArray } from '../../src/device/index.ts';
import type { WebGpuDevice } from '../../src/device/webgpu/backend.ts';
import { splitkReduce } from '../../src/device/webgpu/matmul.ts';
import { backendsUnderTest, normal, relErr, rng, SEED } from './harness.ts';

describe.runIf(backendsUnderTest().includes('webgpu'))('webgpu backend: matmul_splitk_reduce', () => {
  let dev: WebGpuDevice;
  beforeAll(async () => {
    dev = (await createDevice('webgpu')) as WebGpuDevice;
  });
  afterAll(() => dev?.destroy());
  const r = rng(SEED ^ 0x5e1d);

  // [rows, columns of the block, row length of out, first column]: n, ldo and col0 multiples of
  // 4 take the vec4 path; 37 columns, or a block at column 2, the scalar one
  const CASES: [number, number, number, number][] = [
    [5, 64, 96, 32],
    [3, 37, 37, 0],
    [7, 40, 50, 2],
    [129, 256, 256, 0],
  ];
  it.each(CASES.flatMap((c) => [1, 2, 4, 5, 8, 9].flatMap((s) => [false, true].map((b) => [...c, s, b] as const))))(
    'm %i, n %i, ldo %i, col0 %i, %i splits, bias %s',
    async (m, n, ldo, col0, splits, withBias) => {
      const part = normal(r, splits * m * n);
      const bias = normal(r, ldo);
      const tp = fromArray(dev, part, [splits * m * n], 'f32');
      const tb = withBias ? fromArray(dev, bias, [ldo], 'f32') : undefined;
      const to = fromArray(dev, new Float64Array(m * ldo).fill(NaN), [m, ldo], 'f32');
      try {
        const d = splitkReduce(tp, to, tb, m, n, ldo, col0, splits);
        expect(d.flags.includes('VEC4')).toBe(n % 4 === 0 && ldo % 4 === 0 && col0 % 4 === 0);
        const s = dev.stream();
        s.dispatch(d);
        await s.submit().done();
        const got = await toArray(dev, to);
        const want = new Float64Array(m * n);
        const block = new Float64Array(m * n);
        for (let i = 0; i < m; i++) {
          for (let c = 0; c < n; c++) {
            let acc = withBias ? bias[col0 + c] : 0;
            for (let q = 0; q < splits; q++) acc += part[q * m * n + i * n + c];
            want[i * n + c] = acc;
            block[i * n + c] = got[i * ldo + col0 + c];
          }
          // the columns outside the block are not written
          for (let c = 0; c < ldo; c++) if (c < col0 || c >= col0 + n) expect(Number.isNaN(got[i * ldo + c])).toBe(true);
        }
        expect(relErr(block, want)).toBeLessThan(1e-6);
      } finally {
        for (const t of [tp, tb, to]) if (t) dev.free(t.buffer);
      }
    },
  );
});

// Parity of resolve_tokens (the engine's step overlap: ids of step N+1 that were still being
// sampled by step N when N+1 was built) with the CPU reference, on every backend present.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Device } from '../../src/device/index.ts';
import { SEED, backendsUnderTest, host, openBackend, reference, rng, runOp } from './harness.ts';

describe.each(backendsUnderTest())('%s backend: resolve_tokens', (backend) => {
  let dev: Device;
  beforeAll(async () => {
    dev = await openBackend(backend);
  });
  afterAll(() => dev?.destroy());
  const r = rng(SEED ^ 0x7e50);

  it.each([
    [1, 1, [1]],
    [300, 257, [300]],
    [35, 33, [7, 5]], // a 2-D id list (penalty rows padded with -1)
    [1000, 3, [1000]],
  ])('%i ids, %i sampled rows', async (n, m, shape) => {
    const sampled = Array.from({ length: m }, () => Math.floor(r() * 32000));
    // token ids, -1 padding, placeholders of existing rows, and a few of rows past the end
    const ids = Array.from({ length: n }, () => {
      const u = r();
      if (u < 0.3) return Math.floor(r() * 32000);
      if (u < 0.4) return -1;
      if (u < 0.95) return -2 - Math.floor(r() * m);
      return -2 - m - Math.floor(r() * 5);
    });
    const args = { ids: host(ids, shape, 'i32'), sampled: host(sampled, [m], 'i32') };
    const got = await runOp(dev, 'resolve_tokens', args);
    const want = await reference('resolve_tokens', args);
    expect(Array.from(got.ids)).toEqual(Array.from(want.ids));
    // the reference itself: each placeholder took its row's token
    const w = Array.from(want.ids);
    ids.forEach((v, i) => expect(w[i]).toBe(v >= -1 ? v : -v - 2 < m ? sampled[-v - 2] : -1));
  });
});

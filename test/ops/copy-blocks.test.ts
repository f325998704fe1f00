// copy_blocks (copy-on-write of KV blocks within a pool) against the CPU reference.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Device } from '../../src/device/index.ts';
import { SEED, backendsUnderTest, host, normal, openBackend, reference, relErr, rng, runOp } from './harness.ts';

describe.each(backendsUnderTest())('%s backend: copy_blocks', (backend) => {
  let dev: Device;
  beforeAll(async () => {
    dev = await openBackend(backend);
  });
  afterAll(() => dev?.destroy());
  const r = rng(SEED ^ 0xc0b);

  it.each([
    [12, 4, 2, 16, 'f32'],
    [30, 16, 4, 64, 'f16'],
    [9, 5, 1, 8, 'f16'], // 5 x 1 x 8 f16 = 80 bytes a block: not a binding-aligned size
  ] as const)('%i blocks of %i tokens x %i kv heads x %i, %s', async (numBlocks, bs, kvh, hs, dtype) => {
    const shape = [numBlocks, bs, kvh, hs];
    const n = numBlocks * bs * kvh * hs;
    // four distinct destinations; sources from the other blocks (a source may serve several)
    const order = [...Array(numBlocks).keys()].sort(() => r() - 0.5);
    const dsts = order.slice(0, 4);
    const others = order.slice(4);
    const pairs = dsts.flatMap((d) => [others[Math.floor(r() * others.length)], d]);
    const args = { keyCache: host(normal(r, n), shape, dtype), valueCache: host(normal(r, n), shape, dtype), pairs: host(pairs, [dsts.length, 2], 'i32') };
    const got = await runOp(dev, 'copy_blocks', args);
    const want = await reference('copy_blocks', args);
    expect(relErr(got.keyCache, want.keyCache)).toBe(0);
    expect(relErr(got.valueCache, want.valueCache)).toBe(0);
    // the copies really happened
    expect(relErr(want.keyCache, args.keyCache.values)).toBeGreaterThan(0);
  });
});

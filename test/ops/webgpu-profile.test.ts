// The WebGPU per-dispatch profile (src/device/webgpu/profile.ts): the table's arithmetic and keys
// everywhere; on a GPU with timestamps, a profiled stream computes what an unprofiled one does and
// times each of its dispatches under its op's key. llvmpipe has no timestamps: there the profile
// must stay empty and the results still be right.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDevice } from '../../src/device/index.ts';
import type { WebGpuDevice } from '../../src/device/webgpu/backend.ts';
import { DispatchProfile, profileKey } from '../../src/device/webgpu/profile.ts';
import { SEED, backendsUnderTest, host, output, reference, relErr, rng, runOp, uniform } from './harness.ts';

describe('DispatchProfile', () => {
  it('adds times per key and sorts the largest first', () => {
    const p = new DispatchProfile();
    p.add('a', 1);
    p.add('b', 5);
    p.add('a', 2);
    expect(p.report()).toEqual([
      { key: 'b', ms: 5, count: 1 },
      { key: 'a', ms: 3, count: 2 },
    ]);
    expect(p.table()).toMatch(/8 ms profiled[\s\S]*62\.5%.*b\n\s*37\.5%.*a$/);
    p.untimed = 3;
    p.reset();
    expect(p.report()).toEqual([]);
    expect(p.untimed).toBe(0);
  });
  it('keys a dispatch by op, kernel, flags, a matmul n x k and the power of two above its rows', () => {
    expect(profileKey('matmul', 'matmul_sgmat.wgsl', ['BIAS'], { m: 200, n: 4096, k: 11008 })).toBe('matmul: matmul_sgmat[BIAS] 4096x11008 m<=256');
    expect(profileKey('paged_attention', 'paged_attention.wgsl', [], { num_seqs: 64 })).toBe('paged_attention: paged_attention m<=64');
    expect(profileKey(undefined, 'copy.wgsl', [], {})).toBe('dispatch: copy');
  });
});

describe.skipIf(!backendsUnderTest().includes('webgpu'))('webgpu backend: profiled streams', () => {
  let dev: WebGpuDevice;
  beforeAll(async () => {
    dev = (await createDevice('webgpu', { profile: true })) as WebGpuDevice;
  });
  afterAll(() => dev?.destroy());
  const r = rng(SEED ^ 0x9f0f);

  it('computes as unprofiled, and times every dispatch where the adapter has timestamps', async () => {
    const rows = 37;
    const hidden = 4096;
    const args = {
      x: host(uniform(r, rows * hidden), [rows, hidden]),
      residual: host(uniform(r, rows * hidden), [rows, hidden]),
      weight: host(uniform(r, hidden, 0.5, 1.5), [hidden]),
      out: output([rows, hidden]),
      eps: 1e-5,
    };
    for (let i = 0; i < 3; i++) {
      const got = await runOp(dev, 'rms_norm', args);
      const want = await reference('rms_norm', args);
      expect(relErr(got.out, want.out)).toBeLessThan(1e-4);
    }
    const report = dev.profile!.report();
    if (!dev.info.features.timestamps) {
      expect(report).toEqual([]);
      return;
    }
    const norm = report.filter((row) => row.key.startsWith('rms_norm: '));
    expect(norm.reduce((s, row) => s + row.count, 0)).toBeGreaterThanOrEqual(3);
    for (const row of norm) expect(row.ms).toBeGreaterThan(0);
  });
});

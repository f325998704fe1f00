// Parity of the row-wise ops (embedding, rms_norm, rope, silu_and_mul, softmax, copy) with the
// CPU reference on every backend under test.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Device, createDevice } from '../../src/device/index.ts';
import { fromArray, roundTrip, toArray, view } from '../../src/device/index.ts';
import { ropeCosSin } from '../../src/model/rope.ts';
import { SEED, backendsUnderTest, host, normal, openBackend, output, reference, relErr, rng, runOp, uniform } from './harness.ts';

const F32_TOL = 1e-5;

describe.each(backendsUnderTest())('%s backend: row-wise ops', (backend) => {
  let dev: Device;
  beforeAll(async () => {
    dev = await openBackend(backend);
  });
  afterAll(() => dev?.destroy());

  const r = rng(SEED ^ 0x1234);

  it.each([
    [5, 64, 33, 'f32'],
    [7, 130, 1000, 'f16'],
    [300, 96, 17, 'bf16'],
  ] as const)('embedding: %i ids, hidden %i, vocab %i, %s table', async (n, hidden, vocab, dtype) => {
    const ids = Int32Array.from({ length: n }, () => Math.floor(r() * vocab));
    const args = { ids: host(ids, [n], 'i32'), table: host(normal(r, vocab * hidden), [vocab, hidden], dtype), out: output([n, hidden]) };
    const got = await runOp(dev, 'embedding', args);
    const want = await reference('embedding', args);
    // a gather is exact
    expect(relErr(got.out, want.out)).toBe(0);
  });

  it.each([
    [1, 4096, 'f16', false],
    [3, 1000, 'f32', true],
    [257, 130, 'bf16', true],
    [64, 2048, 'f16', true],
    // rows longer than 4 vec4 per thread, and not a multiple of the workgroup's reach
    [5, 8192 + 4, 'bf16', true],
    [2, 5001, 'f32', false],
  ] as const)('rms_norm: %i rows of %i, %s weight, residual %s', async (n, h, wdt, withResidual) => {
    const args = {
      x: host(normal(r, n * h, 3), [n, h]),
      weight: host(uniform(r, h, 0.5, 1.5), [h], wdt),
      out: output([n, h]),
      residual: withResidual ? host(normal(r, n * h), [n, h]) : undefined,
      eps: 1e-5,
    };
    const got = await runOp(dev, 'rms_norm', args);
    const want = await reference('rms_norm', args);
    expect(relErr(got.out, want.out)).toBeLessThan(F32_TOL);
    if (withResidual) expect(relErr(got.residual, want.residual)).toBeLessThan(F32_TOL);
  });

  it('embedding: a table larger than one binding is split into row blocks', async () => {
    // a 16 KiB binding limit splits a [300, 64] f16 table (37.5 KiB) into blocks of 128 rows
    const small = await createDevice(backend, { maxBindingBytes: 16 * 1024 });
    try {
      const [n, hidden, vocab] = [50, 64, 300];
      const ids = Int32Array.from({ length: n }, (_, i) => (i === 0 ? vocab - 1 : Math.floor(r() * vocab)));
      const table = normal(r, vocab * hidden);
      const args = { ids: host(ids, [n], 'i32'), table: host(table, [vocab, hidden], 'f16'), out: output([n, hidden]) };
      const got = await runOp(small, 'embedding', args);
      expect(relErr(got.out, (await reference('embedding', args)).out)).toBe(0);
    } finally {
      small.destroy();
    }
  });

  it('rms_norm in place (out aliases x) with a residual', async () => {
    const [n, h] = [9, 520];
    const x = normal(r, n * h);
    const res = normal(r, n * h);
    const w = uniform(r, h, 0.5, 1.5);
    const tx = fromArray(dev, x, [n, h], 'f32');
    const tr = fromArray(dev, res, [n, h], 'f32');
    const tw = fromArray(dev, w, [h], 'f16');
    await dev.stream().op('rms_norm', { x: tx, weight: tw, out: tx, residual: tr, eps: 1e-6 }).submit().done();
    const want = await reference('rms_norm', { x: host(x, [n, h]), weight: host(w, [h], 'f16'), out: output([n, h]), residual: host(res, [n, h]), eps: 1e-6 });
    expect(relErr(await toArray(dev, tx), want.out)).toBeLessThan(F32_TOL);
    expect(relErr(await toArray(dev, tr), want.residual)).toBeLessThan(F32_TOL);
  });

  it('rms_norm and softmax between views of one buffer', async () => {
    const [n, h] = [6, 256];
    const x = normal(r, n * h);
    const w = uniform(r, h, 0.5, 1.5);
    const arena = fromArray(dev, new Float64Array(4 * n * h).fill(NaN), [4 * n * h], 'f32');
    const [vx, vout, vs] = [0, 1, 2].map((i) => view(arena, i * n * h, [n, h]));
    dev.upload(vx, new Float32Array(x));
    const tw = fromArray(dev, w, [h], 'f32');
    await dev.stream().op('rms_norm', { x: vx, weight: tw, out: vout, eps: 1e-5 }).op('softmax', { x: vout, out: vs }).op('softmax', { x: vx, out: vx }).submit().done();
    const norm = await reference('rms_norm', { x: host(x, [n, h]), weight: host(w, [h]), out: output([n, h]), eps: 1e-5 });
    const sm = await reference('softmax', { x: host(norm.out, [n, h]), out: output([n, h]) });
    const smx = await reference('softmax', { x: host(x, [n, h]), out: output([n, h]) });
    expect(relErr(await toArray(dev, vout), norm.out)).toBeLessThan(F32_TOL);
    expect(relErr(await toArray(dev, vs), sm.out)).toBeLessThan(F32_TOL);
    expect(relErr(await toArray(dev, vx), smx.out)).toBeLessThan(F32_TOL);
  });

  it.each([
    // tokens, heads to rotate, head size, row width, rotary dim, interleaved
    [5, 6, 64, 6 * 64 + 2 * 64, 64, false], // q and k heads of a fused qkv row, v untouched
    [17, 3, 128, 3 * 128, 128, false],
    [4, 2, 80, 200, 32, false], // partial rotary (rot < head size)
    [3, 2, 6, 14, 6, false], // half_rot 3: the scalar path
    [3, 4, 16, 64, 16, true],
  ] as const)('rope: %i tokens, %i heads of %i in rows of %i, rot %i, interleaved %s', async (n, heads, hs, width, rot, interleaved) => {
    const maxPos = 8192;
    const positions = Int32Array.from({ length: n }, () => Math.floor(r() * maxPos));
    const invFreq = Float32Array.from({ length: rot / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / rot));
    const args = {
      x: host(normal(r, n * width), [n, width]),
      positions: host(positions, [n], 'i32'),
      cosSin: host(ropeCosSin(invFreq, maxPos), [maxPos, rot]),
      numHeads: heads,
      headSize: hs,
      interleaved,
    };
    const got = await runOp(dev, 'rope', args);
    const want = await reference('rope', args);
    // cos and sin come from the table: the kernel only multiplies and adds
    expect(relErr(got.x, want.x)).toBeLessThan(F32_TOL);
  });

  it.each([
    [1, 11008],
    [33, 173],
  ])('silu_and_mul: %i rows of %i', async (n, inter) => {
    const args = { x: host(normal(r, n * 2 * inter, 2), [n, 2 * inter]), out: output([n, inter]) };
    const got = await runOp(dev, 'silu_and_mul', args);
    const want = await reference('silu_and_mul', args);
    expect(relErr(got.out, want.out)).toBeLessThan(F32_TOL);
  });

  it.each([
    [2, 32000],
    [5, 77],
    [1, 1],
  ])('softmax: %i rows of %i', async (n, v) => {
    const args = { x: host(normal(r, n * v, 4), [n, v]), out: output([n, v]) };
    const got = await runOp(dev, 'softmax', args);
    const want = await reference('softmax', args);
    expect(relErr(got.out, want.out)).toBeLessThan(F32_TOL);
  });

  it('copy: 1M floats', async () => {
    const n = 1 << 20;
    const args = { x: host(normal(r, n), [n]), out: output([n]) };
    const got = await runOp(dev, 'copy', args);
    expect(relErr(got.out, roundTrip(args.x.values, 'f32'))).toBe(0);
  });
});

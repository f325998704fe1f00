// Parity of qkv_rope_cache (rotary embedding of q and k from fused q/k/v rows, q written out, k
// and v written into the paged cache) with the CPU reference on every backend under test, and
// with rope, rope, reshape_and_cache on the same backend, bit for bit.
//
// q and the caches are NaN-poisoned beforehand: a unit a kernel forgot shows as NaN in q (relErr
// then reports Infinity) or in a written slot, and a stray write shows as a slot that should have
// stayed NaN and did not. Slots are distinct and shuffled, with padding rows (-1) and the last
// slot of the pool among them.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DType, type Device, type OpArgs, type Tensor, fromArray, toArray, view } from '../../src/device/index.ts';
import { ropeCosSin } from '../../src/model/rope.ts';
import { SEED, type HostTensor, backendsUnderTest, host, normal, openBackend, output, reference, relErr, rng, runOp } from './harness.ts';
import { shuffle, splitPool } from './paged.ts';

const MAX_POS = 512;

interface Shape {
  n: number;
  numHeads: number;
  numKvHeads: number;
  headSize: number;
  rot: number;
  blockSize: number;
  numBlocks: number;
  dtype: DType;
}

type Case = [name: string, n: number, numHeads: number, numKvHeads: number, headSize: number, rot: number, blockSize: number, numBlocks: number, dtype: DType];
const CASES: Case[] = [
  ['one token (decode), GQA', 1, 8, 2, 64, 64, 16, 3, 'f16'],
  ['GQA, f16 cache', 7, 8, 2, 64, 64, 16, 6, 'f16'],
  ['MHA, f32 cache', 5, 4, 4, 128, 128, 8, 4, 'f32'],
  ['partial rotary (rot 32 of 80), 16-byte path', 9, 6, 3, 80, 32, 5, 5, 'f16'],
  ['pairs path: half the rotary dim odd (pairs straddle the halves)', 11, 4, 2, 6, 6, 4, 8, 'f32'],
  ['pairs path, partial rotary (rot 12 of 20)', 3, 2, 1, 20, 12, 4, 3, 'f16'],
  ['a prefill chunk over many blocks, one kv head', 67, 4, 1, 32, 32, 4, 20, 'f16'],
];
const shapeOf = ([, n, numHeads, numKvHeads, headSize, rot, blockSize, numBlocks, dtype]: Case): Shape => ({ n, numHeads, numKvHeads, headSize, rot, blockSize, numBlocks, dtype });

/** Host arguments of a case: fresh inputs, q and the caches poisoned, slots with padding. */
function makeArgs(r: () => number, s: Shape) {
  const { n, numHeads, numKvHeads, headSize, rot, blockSize, numBlocks, dtype } = s;
  const width = (numHeads + 2 * numKvHeads) * headSize;
  const last = numBlocks * blockSize - 1;
  const slots = [last, ...shuffle(r, Array.from({ length: last }, (_, i) => i))].slice(0, n);
  if (n >= 3) slots[1] = -1;
  if (n >= 5) slots[n - 2] = -1;
  const positions = Int32Array.from({ length: n }, (_, i) => (i === 0 ? MAX_POS - 1 : Math.floor(r() * MAX_POS)));
  const invFreq = Float32Array.from({ length: rot / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / rot));
  const shape = [numBlocks, blockSize, numKvHeads, headSize];
  const cacheLen = numBlocks * blockSize * numKvHeads * headSize;
  return {
    qkv: host(normal(r, n * width), [n, width]),
    positions: host(positions, [n], 'i32'),
    cosSin: host(ropeCosSin(invFreq, MAX_POS), [MAX_POS, rot]),
    numHeads,
    numKvHeads,
    headSize,
    q: output([n, numHeads * headSize]),
    keyCache: host(new Float64Array(cacheLen).fill(NaN), shape, dtype),
    valueCache: host(new Float64Array(cacheLen).fill(NaN), shape, dtype),
    slotMapping: host(slots, [n], 'i32'),
  };
}

/**
 * The worst relErr over the slots written (rows of the pool), and whether every other element
 * stayed NaN. f16 caches: the kernel and the reference may round a value on either side of an
 * f16 rounding boundary, an f16 ulp (2^-11) apart.
 */
function cacheErr(got: ArrayLike<number>, want: ArrayLike<number>, slots: ArrayLike<number>, rowLen: number): { err: number; untouched: boolean } {
  const written = new Set(Array.from(slots).filter((x) => x >= 0));
  let err = 0;
  let untouched = true;
  for (let slot = 0; slot * rowLen < want.length; slot++) {
    const g = Array.prototype.slice.call(got, slot * rowLen, (slot + 1) * rowLen);
    if (written.has(slot)) err = Math.max(err, relErr(g, Array.prototype.slice.call(want, slot * rowLen, (slot + 1) * rowLen)));
    else untouched &&= g.every(Number.isNaN);
  }
  return { err, untouched };
}

const tol = (dtype: DType) => (dtype === 'f16' ? 1e-3 : 1e-5);

/** Element-wise equality with NaN equal to NaN. */
function same(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  return a.length === b.length && Array.from(a).every((x, i) => x === b[i] || (Number.isNaN(x) && Number.isNaN(b[i])));
}

describe.each(backendsUnderTest())('%s backend: qkv_rope_cache', (backend) => {
  let dev: Device;
  beforeAll(async () => {
    dev = await openBackend(backend);
  });
  afterAll(() => dev?.destroy());
  const r = rng(SEED ^ 0x9c4e);

  it.each(CASES)('%s: %i tokens, %i heads / %i kv heads of %i, rot %i, block size %i, %i blocks, %s cache', async (...c) => {
    const s = shapeOf(c);
    const args = makeArgs(r, s);
    const got = await runOp(dev, 'qkv_rope_cache', args);
    const want = await reference('qkv_rope_cache', args);
    expect(relErr(got.q, want.q)).toBeLessThan(1e-5);
    const rowLen = s.numKvHeads * s.headSize;
    for (const k of ['keyCache', 'valueCache']) {
      const { err, untouched } = cacheErr(got[k], want[k], args.slotMapping.values, rowLen);
      expect(err, k).toBeLessThan(tol(s.dtype));
      expect(untouched, `${k}: a slot not in slotMapping was written`).toBe(true);
    }
  });

  it.each(CASES.filter((c) => c[1] > 1))('equals rope(q), rope(k), reshape_and_cache(k, v) on this backend bit for bit: %s', async (...c) => {
    const s = shapeOf(c);
    const a = makeArgs(r, s);
    const { n, numHeads, numKvHeads, headSize } = s;
    const [qw, kvw] = [numHeads * headSize, numKvHeads * headSize];
    const width = qw + 2 * kvw;
    const cols = (from: number, w: number) => Float64Array.from({ length: n * w }, (_, i) => a.qkv.values[Math.floor(i / w) * width + from + (i % w)]);
    const t = (h: HostTensor) => fromArray(dev, h.values, h.shape, h.dtype);
    const [positions, cosSin, slotMapping] = [t(a.positions), t(a.cosSin), t(a.slotMapping)];
    const q0 = t(host(cols(0, qw), [n, qw]));
    const k = t(host(cols(qw, kvw), [n, kvw]));
    const v = t(host(cols(qw + kvw, kvw), [n, kvw]));
    const [kc0, vc0, kc1, vc1] = [a.keyCache, a.valueCache, a.keyCache, a.valueCache].map(t);
    const q1 = t(a.q);
    await dev
      .stream()
      .op('rope', { x: q0, positions, cosSin, numHeads, headSize })
      .op('rope', { x: k, positions, cosSin, numHeads: numKvHeads, headSize })
      .op('reshape_and_cache', { key: k, value: v, keyCache: kc0, valueCache: vc0, slotMapping })
      .op('qkv_rope_cache', { qkv: t(a.qkv), positions, cosSin, numHeads, numKvHeads, headSize, q: q1, keyCache: kc1, valueCache: vc1, slotMapping })
      .submit()
      .done();
    expect(same(await toArray(dev, q1), await toArray(dev, q0))).toBe(true);
    expect(same(await toArray(dev, kc1), await toArray(dev, kc0))).toBe(true);
    expect(same(await toArray(dev, vc1), await toArray(dev, vc0))).toBe(true);
  });

  it('reads qkv and writes q through views of shared buffers', async () => {
    // the model's workspace may place them in one arena: on webgpu every binding then becomes read_write
    const s = shapeOf(CASES[1]);
    const a = makeArgs(r, s);
    const width = a.qkv.shape[1];
    const qw = s.numHeads * s.headSize;
    // qkv at element 0, q after it at a 256-byte boundary
    const qAt = Math.ceil((s.n * width) / 64) * 64;
    const arena = fromArray(dev, new Float64Array(qAt + s.n * qw).fill(NaN), [qAt + s.n * qw], 'f32');
    const qkv = view(arena, 0, [s.n, width]);
    const q = view(arena, qAt, [s.n, qw]);
    dev.upload(qkv, new Float32Array(a.qkv.values as Float64Array));
    const t = (h: HostTensor) => fromArray(dev, h.values, h.shape, h.dtype);
    const [keyCache, valueCache] = [t(a.keyCache), t(a.valueCache)];
    const args: OpArgs['qkv_rope_cache'] = { qkv, positions: t(a.positions), cosSin: t(a.cosSin), numHeads: s.numHeads, numKvHeads: s.numKvHeads, headSize: s.headSize, q, keyCache, valueCache, slotMapping: t(a.slotMapping) };
    await dev.stream().op('qkv_rope_cache', args).submit().done();
    const want = await reference('qkv_rope_cache', a);
    expect(relErr(await toArray(dev, q), want.q)).toBeLessThan(1e-5);
    expect(cacheErr(await toArray(dev, keyCache), want.keyCache, a.slotMapping.values, s.numKvHeads * s.headSize).err).toBeLessThan(tol(s.dtype));
  });

  it('rejects arguments that do not fit together, with the reason', () => {
    const t = (shape: number[], dtype: DType = 'f32'): Tensor => fromArray(dev, new Float64Array(shape.reduce((x, y) => x * y, 1)), shape, dtype);
    const base: OpArgs['qkv_rope_cache'] = {
      qkv: t([3, (4 + 2 * 2) * 16]),
      positions: t([3], 'i32'),
      cosSin: t([32, 16]),
      numHeads: 4,
      numKvHeads: 2,
      headSize: 16,
      q: t([3, 4 * 16]),
      keyCache: t([2, 4, 2, 16], 'f16'),
      valueCache: t([2, 4, 2, 16], 'f16'),
      slotMapping: t([3], 'i32'),
    };
    const why = (a: OpArgs['qkv_rope_cache']) => {
      const s = dev.supports('qkv_rope_cache', a);
      return s.ok ? 'ok' : s.reason;
    };
    expect(why(base)).toBe('ok');
    expect(why({ ...base, numKvHeads: 4 })).toMatch(/must be the caches' \(2 kv heads of 16\)/);
    expect(why({ ...base, qkv: t([3, 4 * 16 * 3]) })).toMatch(/qkv dim 1 must be 128/);
    expect(why({ ...base, cosSin: t([32, 18]) })).toMatch(/rotary dim 18/);
    expect(why({ ...base, q: view(base.qkv, 0, [3, 64]) })).toMatch(/q must not overlap qkv/);
  });
});

// native keeps each pool in one allocation (maxPoolParts 1: no binding limit to split for)
describe.each(['cpu', ...backendsUnderTest().filter((b) => b !== 'native')])('%s backend: qkv_rope_cache into a KV pool in parts', (backend) => {
  let dev: Device;
  beforeAll(async () => {
    dev = await openBackend(backend);
  });
  afterAll(() => dev?.destroy());
  const r = rng(SEED ^ 0x4a7d);

  it.each([
    [2, 'f32', 64],
    [3, 'f16', 64],
    [4, 'f16', 6], // the pairs path
  ] as const)('each slot into its part: %i parts, %s cache, head size %i', async (parts, dtype, headSize) => {
    const s: Shape = { n: 23, numHeads: 4, numKvHeads: 2, headSize, rot: headSize, blockSize: 4, numBlocks: 10, dtype };
    const whole = makeArgs(r, s);
    const per = Math.ceil(s.numBlocks / parts);
    // the first and last slot of every part among the slots written
    const edges = Array.from({ length: parts }, (_, p) => [p * per * s.blockSize, Math.min((p + 1) * per, s.numBlocks) * s.blockSize - 1]).flat();
    const rest = shuffle(r, Array.from({ length: s.numBlocks * s.blockSize }, (_, i) => i).filter((i) => !edges.includes(i)));
    const slots = [...edges, -1, ...rest].slice(0, s.n);
    const args = { ...whole, slotMapping: host(slots, [s.n], 'i32') };
    const got = await runOp(dev, 'qkv_rope_cache', { ...args, keyCache: splitPool(args.keyCache, per), valueCache: splitPool(args.valueCache, per) });
    const want = await reference('qkv_rope_cache', args);
    expect(relErr(got.q, want.q)).toBeLessThan(1e-5);
    for (const k of ['keyCache', 'valueCache']) {
      const { err, untouched } = cacheErr(got[k], want[k], slots, s.numKvHeads * headSize);
      expect(err, k).toBeLessThan(tol(dtype));
      expect(untouched, `${k}: a slot not in slotMapping was written`).toBe(true);
    }
  });
});

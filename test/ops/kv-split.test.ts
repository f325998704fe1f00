// KV pools split into parts (src/device/kv-pool.ts): every cache op on a pool given as 2-4
// parts must do what the CPU reference does on the same pool whole. Block b lives in part
// floor(b / per), so a kernel that picks the wrong part (or the wrong row in it) reads another
// block's data or a NaN-poisoned slot, or writes where the whole pool's reference does not.
// The cpu backend is under test too: its split paths are not the oracle's.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DType, type Device, MAX_KV_PARTS, createDevice, fromArray, poolParts, roundTrip, toArray } from '../../src/device/index.ts';
import { LLM } from '../../src/engine/llm.ts';
import { loadConfig } from '../../src/model/config.ts';
import { KvCache, KvCacheTooLargeError } from '../../src/model/kv-cache.ts';
import { SEED, backendsUnderTest, host, normal, openBackend, output, reference, relErr, rng, runOp } from './harness.ts';
import { type Paged, cacheArgs, pagedCache, prefillTol, rowErr, shuffle, splitPool } from './paged.ts';

const TOL = 1e-5;
const TINY = join(import.meta.dirname, '..', 'fixtures', 'hf', 'tiny-llama');

/** The split of a pool of numBlocks into `parts` parts: blocks per part. */
const perPart = (numBlocks: number, parts: number) => Math.ceil(numBlocks / parts);

/** The split caches of p (as cacheArgs gives them whole). */
function splitArgs(p: Paged, per: number) {
  const whole = cacheArgs(p);
  return { ...whole, keyCache: splitPool(whole.keyCache, per), valueCache: splitPool(whole.valueCache, per) };
}

/** Parts that sequence s's blocks (those holding its context) lie in. */
function partsOf(p: Paged, lens: number[], s: number, per: number): Set<number> {
  const out = new Set<number>();
  for (let b = 0; b < Math.ceil(lens[s] / p.blockSize); b++) out.add(Math.floor(p.tables[s * p.maxBlocks + b] / per));
  return out;
}

type DecodeCase = [name: string, parts: number, lens: number[], blockSize: number, numHeads: number, numKvHeads: number, headSize: number, dtype: DType, partitionSize: number];
const DECODE: DecodeCase[] = [
  // a partition size past the block table's bound: one partition (v1)
  ['v1, GQA', 2, [17, 40, 100, 3], 16, 8, 2, 64, 'f32', 1 << 20],
  ['v1, MHA', 3, [5, 33, 64, 90], 8, 4, 4, 128, 'f16', 1 << 20],
  ['v2, GQA', 4, [31, 150, 257, 64], 16, 8, 2, 64, 'f32', 32],
  ['v2, block size 5', 3, [64, 130, 12], 5, 8, 2, 64, 'f16', 48],
];

type PrefillCase = [name: string, parts: number, lens: number[], qlens: number[], blockSize: number, numHeads: number, numKvHeads: number, headSize: number, dtype: DType];
const PREFILL: PrefillCase[] = [
  ['cached prefixes, GQA', 2, [40, 70, 19], [5, 30, 19], 8, 8, 2, 64, 'f32'],
  ['fresh prompts, MHA', 4, [60, 33, 90], [60, 33, 90], 4, 4, 4, 64, 'f16'],
  ['chunked prefill with a decode row', 3, [100, 50, 23], [17, 1, 23], 5, 8, 2, 128, 'f32'],
  // head size 128 on an f16 cache: the matrix units' kernels (native, and WebGPU where it has them)
  ['prompts and a cached prefix, head size 128, f16', 3, [70, 33, 130, 90], [70, 33, 100, 30], 8, 4, 2, 128, 'f16'],
];

// native keeps each pool in one allocation (maxPoolParts 1: no binding limit to split for)
describe.each(['cpu', ...backendsUnderTest().filter((b) => b !== 'native')])('%s backend: KV pools split into parts', (backend) => {
  let dev: Device;
  beforeAll(async () => {
    dev = await openBackend(backend);
  });
  afterAll(() => dev?.destroy());
  const r = rng(SEED ^ 0x5b17);

  it.each([
    [2, 'f32'],
    [3, 'f16'],
    [4, 'f32'],
  ] as const)('reshape_and_cache writes each slot into its part: %i parts, %s cache', async (parts, dtype) => {
    const [numBlocks, blockSize, kvh, hs] = [10, 4, 2, 32];
    const per = perPart(numBlocks, parts);
    const w = kvh * hs;
    // a slot in the first and in the last block of every part, others at random, two padding rows
    const edges = Array.from({ length: parts }, (_, p) => [p * per * blockSize, Math.min((p + 1) * per, numBlocks) * blockSize - 1]).flat();
    const rest = shuffle(r, Array.from({ length: numBlocks * blockSize }, (_, i) => i).filter((i) => !edges.includes(i))).slice(0, 6);
    const slots = [...edges, -1, ...rest, -1];
    const n = slots.length;
    const shape = [numBlocks, blockSize, kvh, hs];
    const cacheLen = numBlocks * blockSize * w;
    const whole = {
      key: host(roundTrip(normal(r, n * w), dtype), [n, w]),
      value: host(roundTrip(normal(r, n * w), dtype), [n, w]),
      keyCache: host(roundTrip(normal(r, cacheLen), dtype), shape, dtype),
      valueCache: host(roundTrip(normal(r, cacheLen), dtype), shape, dtype),
      slotMapping: host(slots, [n], 'i32'),
    };
    const got = await runOp(dev, 'reshape_and_cache', { ...whole, keyCache: splitPool(whole.keyCache, per), valueCache: splitPool(whole.valueCache, per) });
    const want = await reference('reshape_and_cache', whole);
    // the parts one after the other are the whole pool: exact, every unwritten slot unchanged
    expect(relErr(got.keyCache, want.keyCache)).toBe(0);
    expect(relErr(got.valueCache, want.valueCache)).toBe(0);
    expect(relErr(want.keyCache, whole.keyCache.values)).toBeGreaterThan(0);
  });

  it.each([
    [4, 'f32'],
    [2, 'f16'],
  ] as const)('copy_blocks copies between parts and within one: %i parts, %s cache', async (parts, dtype) => {
    const [numBlocks, blockSize, kvh, hs] = [11, 4, 2, 16];
    const per = perPart(numBlocks, parts);
    // destinations and sources apart; every destination's part differs from its source's but one
    const order = shuffle(r, [...Array(numBlocks).keys()]);
    const dsts = order.slice(0, 4);
    const srcs = order.slice(4);
    const pairs = dsts.flatMap((d, i) => {
      const other = srcs.filter((s) => (i === 0) === (Math.floor(s / per) === Math.floor(d / per)));
      return [other.length ? other[Math.floor(r() * other.length)] : srcs[0], d];
    });
    expect(pairs.some((_, i) => i % 2 === 0 && Math.floor(pairs[i] / per) !== Math.floor(pairs[i + 1] / per))).toBe(true);
    const shape = [numBlocks, blockSize, kvh, hs];
    const n = numBlocks * blockSize * kvh * hs;
    const whole = { keyCache: host(roundTrip(normal(r, n), dtype), shape, dtype), valueCache: host(roundTrip(normal(r, n), dtype), shape, dtype), pairs: host(pairs, [4, 2], 'i32') };
    const got = await runOp(dev, 'copy_blocks', { ...whole, keyCache: splitPool(whole.keyCache, per), valueCache: splitPool(whole.valueCache, per) });
    const want = await reference('copy_blocks', whole);
    expect(relErr(got.keyCache, want.keyCache)).toBe(0);
    expect(relErr(got.valueCache, want.valueCache)).toBe(0);
    expect(relErr(want.keyCache, whole.keyCache.values)).toBeGreaterThan(0);
  });

  it.each(DECODE)('paged_attention %s over %i parts: contexts %j, block size %i, %i heads / %i kv heads of %i, %s cache, partition %i', async (_name, parts, lens, blockSize, numHeads, kvh, hs, dtype, partitionSize) => {
    const p = pagedCache(r, { blockSize, numKvHeads: kvh, headSize: hs, dtype }, lens);
    const per = perPart(p.numBlocks, parts);
    // the longest sequence's blocks are spread over the parts (shuffled ids: nearly always; the test says so if not)
    expect(partsOf(p, lens, lens.indexOf(Math.max(...lens)), per).size).toBeGreaterThan(1);
    const n = lens.length;
    const width = numHeads * hs;
    const rest = { q: host(normal(r, n * width), [n, width]), contextLens: host(lens, [n], 'i32'), out: output([n, width]), scale: 1 / Math.sqrt(hs), partitionSize };
    const got = await runOp(dev, 'paged_attention', { ...rest, ...splitArgs(p, per) });
    const want = await reference('paged_attention', { ...rest, ...cacheArgs(p) });
    expect(rowErr(got.out, want.out, hs)).toBeLessThan(TOL);
  });

  it.each(PREFILL)('prefill_attention %s over %i parts: contexts %j, chunks %j, block size %i, %i heads / %i kv heads of %i, %s cache', async (_name, parts, lens, qlens, blockSize, numHeads, kvh, hs, dtype) => {
    const p = pagedCache(r, { blockSize, numKvHeads: kvh, headSize: hs, dtype }, lens);
    const per = perPart(p.numBlocks, parts);
    expect(partsOf(p, lens, lens.indexOf(Math.max(...lens)), per).size).toBeGreaterThan(1);
    const starts = [0];
    for (const q of qlens) starts.push(starts[starts.length - 1] + q);
    const tokens = starts[starts.length - 1];
    const width = numHeads * hs;
    const rest = {
      q: host(normal(r, tokens * width), [tokens, width]),
      queryStarts: host(starts, [lens.length + 1], 'i32'),
      contextLens: host(lens, [lens.length], 'i32'),
      out: output([tokens, width]),
      scale: 1 / Math.sqrt(hs),
    };
    const got = await runOp(dev, 'prefill_attention', { ...rest, ...splitArgs(p, per) });
    const want = await reference('prefill_attention', { ...rest, ...cacheArgs(p) });
    expect(rowErr(got.out, want.out, hs)).toBeLessThan(prefillTol(dev, dtype, hs));
  });

  it('parts that do not make a pool are rejected with the reason', () => {
    const t = (blocks: number, hs = 16) => fromArray(dev, new Float64Array(blocks * 4 * 2 * hs), [blocks, 4, 2, hs], 'f32');
    const args = (keyCache: ReturnType<typeof t>[], valueCache = keyCache) => ({ keyCache, valueCache, pairs: fromArray(dev, [0, 1], [1, 2], 'i32') });
    expect(dev.supports('copy_blocks', args([t(3), t(3), t(2)])).ok).toBe(true);
    const why = (a: ReturnType<typeof args>) => {
      const s = dev.supports('copy_blocks', a);
      return s.ok ? 'ok' : s.reason;
    };
    expect(why(args([t(3), t(2), t(3)]))).toMatch(/keyCache part 1 dim 0 must be 3/);
    expect(why(args([t(3), t(4)]))).toMatch(/part 1 must hold 1..3 blocks/);
    expect(why(args([t(3), t(3, 32)]))).toMatch(/keyCache part 1 dim 3 must be 16/);
    expect(why(args([t(3), t(3)], [t(3)]))).toMatch(/valueCache must have the parts of keyCache/);
    expect(why(args(Array.from({ length: MAX_KV_PARTS + 1 }, () => t(1))))).toMatch(/1..4 parts/);
  });
});

describe('KvCache: pools split by the part size', () => {
  it('splits each layer pool into parts of whole blocks, and block views land in their part', async () => {
    const dev = await createDevice('cpu');
    const config = await loadConfig(TINY);
    const blockBytes = KvCache.bytesPerBlock(config, 4, 'f32') / (2 * config.numLayers);
    const cache = new KvCache(dev, config, { numBlocks: 10, blockSize: 4, dtype: 'f32', maxPartBytes: 3.5 * blockBytes });
    expect(cache.blocksPerPart).toBe(3);
    expect(cache.keys.length).toBe(config.numLayers);
    expect(cache.keys[0].map((t) => t.shape[0])).toEqual([3, 3, 3, 1]);
    expect(cache.values[1].map((t) => t.shape[0])).toEqual([3, 3, 3, 1]);
    // block 7 is row 1 of part 2
    const [k, v] = cache.block(1, 7);
    expect(k.buffer).toBe(cache.keys[1][2].buffer);
    expect(v.buffer).toBe(cache.values[1][2].buffer);
    expect(k.offset).toBe(blockBytes);
    expect(() => cache.block(0, 10)).toThrow(RangeError);
    // a pool that fits one part is one tensor, the kernels of an unsplit pool
    expect(new KvCache(dev, config, { numBlocks: 3, blockSize: 4, dtype: 'f32', maxPartBytes: 3.5 * blockBytes }).keys[0].length).toBe(1);
    // more parts than the device binds: a clear error
    expect(() => new KvCache(dev, config, { numBlocks: 3 * dev.info.maxPoolParts + 1, blockSize: 4, dtype: 'f32', maxPartBytes: 3.5 * blockBytes })).toThrow(KvCacheTooLargeError);
    expect(KvCache.maxBlocks(dev, config, 4, 'f32', 3.5 * blockBytes)).toBe(3 * dev.info.maxPoolParts);
    dev.destroy();
  });

  it('LLM.create: a cache sized from memory takes what maxPoolParts parts hold; a numGpuBlocks beyond it is a clear error', async () => {
    // tiny-llama's f16 blocks of 4 tokens are 256 bytes per layer pool: parts of 16 blocks
    const o = { model: TINY, backend: 'cpu', blockSize: 4, maxKvPartBytes: 16 * 256 };
    const llm = await LLM.create(o);
    try {
      const parts = llm.device.info.maxPoolParts;
      expect(llm.cache.numBlocks).toBe(16 * parts);
      expect(llm.cache.keys[0].length).toBe(parts);
      expect(llm.engine.blocks.numBlocks).toBe(16 * parts);
    } finally {
      await llm.close();
    }
    await expect(LLM.create({ ...o, numGpuBlocks: 16 * MAX_KV_PARTS + 1 })).rejects.toThrow(KvCacheTooLargeError);
  });

  it.skipIf(!backendsUnderTest().includes('webgpu'))('webgpu: a cache over the binding limit splits, and a step of writes and reads runs on it', async () => {
    // 16 KiB bindings: 80 blocks of 4 f32 tokens x 2 kv heads x 16 (512 bytes a block) make 40 KiB pools
    const small = await createDevice('webgpu', { maxBindingBytes: 16 * 1024 });
    try {
      const config = await loadConfig(TINY);
      const blockBytes = KvCache.bytesPerBlock(config, 4, 'f32') / (2 * config.numLayers);
      const numBlocks = Math.floor((2.5 * 16 * 1024) / blockBytes);
      const cache = new KvCache(small, config, { numBlocks, blockSize: 4, dtype: 'f32' });
      expect(cache.keys[0].length).toBe(3);
      const [kvh, hs] = [config.numKvHeads, config.headDim];
      const w = kvh * hs;
      const r = rng(SEED ^ 0x77);
      // one sequence of 3 blocks, one in each part, written and then read by decode
      const table = [cache.blocksPerPart * 2 + 1, 0, cache.blocksPerPart + 2];
      const len = 10;
      const slots = Array.from({ length: len }, (_, pos) => table[Math.floor(pos / 4)] * 4 + (pos % 4));
      const key = normal(r, len * w);
      const value = normal(r, len * w);
      const q = normal(r, config.numHeads * hs);
      const out = fromArray(small, new Float64Array(config.numHeads * hs).fill(NaN), [1, config.numHeads * hs], 'f32');
      await small
        .stream()
        .op('reshape_and_cache', { key: fromArray(small, key, [len, w], 'f32'), value: fromArray(small, value, [len, w], 'f32'), keyCache: cache.keys[0], valueCache: cache.values[0], slotMapping: fromArray(small, slots, [len], 'i32') })
        .op('paged_attention', {
          q: fromArray(small, q, [1, config.numHeads * hs], 'f32'),
          keyCache: cache.keys[0],
          valueCache: cache.values[0],
          blockTables: fromArray(small, table, [1, 3], 'i32'),
          contextLens: fromArray(small, [len], [1], 'i32'),
          out,
          scale: 0.25,
        })
        .submit()
        .done();
      // the reference on a whole pool holding just this sequence, in blocks 0..2
      const shape = [3, 4, kvh, hs];
      const kc = new Float64Array(3 * 4 * w).fill(NaN);
      const vc = new Float64Array(3 * 4 * w).fill(NaN);
      kc.set(key);
      vc.set(value);
      const want = await reference('paged_attention', {
        q: host(q, [1, config.numHeads * hs]),
        keyCache: host(kc, shape),
        valueCache: host(vc, shape),
        blockTables: host([0, 1, 2], [1, 3], 'i32'),
        contextLens: host([len], [1], 'i32'),
        out: output([1, config.numHeads * hs]),
        scale: 0.25,
      });
      expect(rowErr(await toArray(small, out), want.out, hs)).toBeLessThan(TOL);
      expect(poolParts(cache.keys[0]).every((t) => t.shape[0] * blockBytes <= 16 * 1024)).toBe(true);
      cache.free();
    } finally {
      small.destroy();
    }
  });
});

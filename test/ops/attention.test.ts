// Parity of the paged-KV-cache ops (reshape_and_cache, paged_attention v1 and v2,
// prefill_attention) with the CPU reference on every backend under test.
//
// Caches are [numBlocks, blockSize, numKvHeads, headSize]; each sequence owns a shuffled,
// non-contiguous set of blocks, and every slot outside a sequence's context (the tail of its
// last block, spare blocks, the blocks that unused block-table entries point at) holds NaN: a
// kernel that reads one turns its output into NaN, which relErr reports as Infinity.
// f16 caches are filled from f16-rounded numbers, so the reference sees exactly what the
// kernel reads and the f32 tolerance holds for them too.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DType, type Device, TensorTooLargeError, createDevice, empty, fromArray, roundTrip, toArray, view } from '../../src/device/index.ts';
import type { WebGpuDevice } from '../../src/device/webgpu/backend.ts';
import { DECODE_FILL, DECODE_V1_MAX, MIN_PARTITION, V2_MIN_CONTEXT, flashShape, planPagedAttention, planPrefillAttention, prefillChoice, prefillKernel } from '../../src/device/webgpu/attention.ts';
import { SEED, type HostTensor, backendsUnderTest, host, normal, openBackend, output, reference, relErr, rng, runOp } from './harness.ts';
import { cacheArgs, pagedCache, prefillTol, rowErr, shuffle } from './paged.ts';

const TOL = 1e-5;

type DecodeCase = [name: string, lens: number[], blockSize: number, numHeads: number, numKvHeads: number, headSize: number, dtype: DType, partitionSize: number, extra: number];
// The planner splits contexts into partitions (v2) unless the sequences x head blocks fill the
// GPU (DECODE_FILL workgroups) or a partitionSize of at least the block table's bound asks
// for one partition (ONE): so the v1 cases below either pass ONE or bring many sequences.
const ONE = 1 << 20;
// 72 sequences x 8 heads: v1 by the planner's choice. Mixed lengths around the QK round of 64
// keys (head size 128), 0 and 1 among them.
const MANY = Array.from({ length: 72 }, (_, i) => [0, 1, 63, 64, 65, 127, 128, 129, 200][i % 9] + (i % 7 === 0 ? i % 50 : 0));
const DECODE: DecodeCase[] = [
  ['v1, GQA', [1, 17, 40, 100, 16], 16, 8, 2, 64, 'f32', ONE, 2],
  ['v1, MHA', [5, 33, 64], 8, 4, 4, 128, 'f16', ONE, 2],
  ['v1, block size 5', [3, 26, 51, 7], 5, 8, 2, 128, 'f32', ONE, 1],
  ['v1, head size 256', [40, 77], 16, 4, 2, 256, 'f16', ONE, 1],
  ['v1, empty and one-token contexts, head size 8', [0, 1, 2, 0, 33], 4, 4, 2, 8, 'f16', ONE, 1],
  ['v1, keys around the QK round', [63, 64, 65, 127, 128, 129, 191, 192], 16, 2, 2, 128, 'f16', ONE, 0],
  ['v1 by choice, many sequences of mixed lengths', MANY, 16, 8, 8, 128, 'f16', 0, 0],
  ['v1, a group of 3 query heads per kv head', [9, 70, 130], 8, 6, 2, 64, 'f32', ONE, 1],
  // several partitions per sequence, contexts on and off partition edges, empty last partitions
  ['v2, GQA', [1, 31, 32, 33, 150, 257], 16, 8, 2, 128, 'f32', 32, 3],
  ['v2, MHA, partition not a multiple of the tile', [200, 9, 97], 8, 4, 4, 64, 'f16', 48, 2],
  ['v2, 8 heads per kv head, block size 5', [64, 130], 5, 16, 2, 64, 'f16', 32, 2],
  ['v2, partitions of 200 keys (several QK rounds)', [0, 199, 200, 201, 650], 16, 4, 4, 128, 'f16', 200, 1],
  // a block table wide enough that the backend splits it by itself
  ['v2 by choice', [700, 1500, 3], 16, 8, 1, 64, 'f32', 0, Math.ceil(V2_MIN_CONTEXT / 16) - 90],
  ['v2 by choice, few sequences', [1000, 1], 16, 4, 4, 128, 'f16', 0, 0],
  // head sizes paged_attention.wgsl does not take: the tiled kernel
  ['tiled v1, head size 96', [40, 77, 1], 16, 4, 2, 96, 'f16', 0, 1],
  ['tiled v2, head size 96', [40, 300, 0], 16, 4, 2, 96, 'f32', 64, 1],
];

type PrefillCase = [name: string, lens: number[], qlens: number[], blockSize: number, numHeads: number, numKvHeads: number, headSize: number, dtype: DType];
const PREFILL: PrefillCase[] = [
  ['fresh prompts, GQA', [1, 7, 20, 33], [1, 7, 20, 33], 16, 8, 2, 64, 'f32'],
  ['cached prefixes, MHA', [40, 70, 19], [5, 30, 19], 8, 4, 4, 128, 'f16'],
  ['chunked prefill with a decode row and an empty chunk', [100, 50, 23, 10], [17, 1, 23, 0], 5, 8, 2, 128, 'f32'],
  ['a long chunk', [130], [100], 16, 4, 1, 64, 'f16'],
  ['head size 256', [30, 12], [30, 5], 16, 2, 2, 256, 'f32'],
  // chunks of 0 or 1 mod 64 (so mod any power-of-two tile height): the launched tile count,
  // an upper bound, is then exact, and a workgroup that misplaces its tile leaves rows unwritten
  ['exact tile count', [64, 1, 140, 65], [64, 1, 128, 65], 16, 8, 2, 64, 'f16'],
  // several query tiles and key tiles of the native f16 path (32 rows x 64 keys), with a prefix
  ['many tiles, GQA, f16', [300, 65, 1], [280, 64, 1], 16, 8, 2, 128, 'f16'],
  ['head size 80 (not a power of two), f16', [90, 33], [90, 10], 8, 4, 2, 80, 'f16'],
  // the native tensor-core path (64 query rows, 16 per warp, x 64-key tiles): chunks that start
  // mid-tile after cached prefixes, a decode row, an empty chunk, block size 5
  ['chunked prefill, f16', [100, 50, 23, 10, 200], [17, 1, 23, 0, 70], 5, 8, 2, 128, 'f16'],
  // a short chunk after a long prefix: several key tiles before the diagonal one
  ['short chunks after long prefixes, f16', [250, 129], [20, 3], 16, 4, 4, 64, 'f16'],
  // fresh prompts around the tile sizes, several query tiles per sequence, in one launch
  ['8 prompts around the tile sizes, f16', [64, 65, 127, 128, 129, 200, 16, 17], [64, 65, 127, 128, 129, 200, 16, 17], 16, 2, 2, 128, 'f16'],
  // a batch of short prompts in one launch (query tiles of several sequences side by side), GQA
  ['8 prompts of ~40 tokens, GQA, f16', [40, 37, 44, 41, 33, 48, 39, 40], [40, 37, 44, 41, 33, 48, 39, 40], 16, 8, 2, 64, 'f16'],
  // more sequences than the flash kernel's workgroup has threads (its search for a workgroup's
  // query tile runs in chunks of WG sequences): short chunks, some empty, some after a prefix
  ['300 short chunks', Array.from({ length: 300 }, (_, i) => 1 + ((i * 7) % 23)), Array.from({ length: 300 }, (_, i) => Math.min(1 + ((i * 7) % 23), i % 5)), 4, 2, 1, 128, 'f16'],
  ['8 prompts of ~40 tokens after prefixes, GQA, f32', [52, 37, 60, 41, 33, 48, 70, 40], [40, 30, 44, 41, 20, 48, 39, 33], 8, 8, 4, 128, 'f32'],
];

describe.each(backendsUnderTest())('%s backend: paged attention', (backend) => {
  let dev: Device;
  beforeAll(async () => {
    dev = await openBackend(backend);
  });
  afterAll(() => dev?.destroy());
  const r = rng(SEED ^ 0x9abc);

  it.each([
    // tokens, block size, kv heads, head size, dtype
    [9, 16, 2, 64, 'f32'],
    [12, 8, 4, 128, 'f16'],
    [7, 5, 1, 64, 'f16'],
  ] as const)('reshape_and_cache: %i tokens (some padding), block size %i, %i kv heads of %i, %s cache', async (n, blockSize, kvh, hs, dtype) => {
    const numBlocks = 6;
    const w = kvh * hs;
    const cacheLen = numBlocks * blockSize * w;
    // distinct slots (two tokens writing one slot would race), the last slot of the pool first
    const last = numBlocks * blockSize - 1;
    const slots = [last, ...shuffle(r, Array.from({ length: last }, (_, i) => i)).slice(0, n - 1)];
    for (const i of [1, n - 2]) slots[i] = -1; // padding rows
    const shape = [numBlocks, blockSize, kvh, hs];
    const args = {
      key: host(roundTrip(normal(r, n * w), dtype), [n, w]),
      value: host(roundTrip(normal(r, n * w), dtype), [n, w]),
      keyCache: host(roundTrip(normal(r, cacheLen), dtype), shape, dtype),
      valueCache: host(roundTrip(normal(r, cacheLen), dtype), shape, dtype),
      slotMapping: host(slots, [n], 'i32'),
    };
    const got = await runOp(dev, 'reshape_and_cache', args);
    const want = await reference('reshape_and_cache', args);
    // a copy of representable values is exact, and every slot not written keeps its value
    expect(relErr(got.keyCache, want.keyCache)).toBe(0);
    expect(relErr(got.valueCache, want.valueCache)).toBe(0);
  });

  it.each(DECODE)('paged_attention %s: contexts %j, block size %i, %i heads / %i kv heads of %i, %s cache, partition %i', async (_name, lens, blockSize, numHeads, kvh, hs, dtype, partitionSize, extra) => {
    const p = pagedCache(r, { blockSize, numKvHeads: kvh, headSize: hs, dtype }, lens, extra);
    const n = lens.length;
    const width = numHeads * hs;
    const args = {
      q: host(normal(r, n * width), [n, width]),
      ...cacheArgs(p),
      contextLens: host(lens, [n], 'i32'),
      out: output([n, width]),
      scale: 1 / Math.sqrt(hs),
      partitionSize,
    };
    const got = await runOp(dev, 'paged_attention', args);
    const want = await reference('paged_attention', args);
    expect(rowErr(got.out, want.out, hs)).toBeLessThan(TOL);
  });

  it.each(PREFILL)('prefill_attention %s: contexts %j, chunks %j, block size %i, %i heads / %i kv heads of %i, %s cache', async (_name, lens, qlens, blockSize, numHeads, kvh, hs, dtype) => {
    const p = pagedCache(r, { blockSize, numKvHeads: kvh, headSize: hs, dtype }, lens);
    const starts = [0];
    for (const q of qlens) starts.push(starts[starts.length - 1] + q);
    const tokens = starts[starts.length - 1];
    const width = numHeads * hs;
    const args = {
      q: host(normal(r, tokens * width), [tokens, width]),
      ...cacheArgs(p),
      queryStarts: host(starts, [lens.length + 1], 'i32'),
      contextLens: host(lens, [lens.length], 'i32'),
      out: output([tokens, width]),
      scale: 1 / Math.sqrt(hs),
    };
    const got = await runOp(dev, 'prefill_attention', args);
    const want = await reference('prefill_attention', args);
    expect(rowErr(got.out, want.out, hs)).toBeLessThan(prefillTol(dev, dtype, hs));
  });

  it('a prefill step: reshape_and_cache writes the chunk, prefill_attention reads it with the cached prefix', async () => {
    const [blockSize, numHeads, kvh, hs, dtype] = [8, 8, 2, 64, 'f16' as const];
    const prefix = [12, 0, 30];
    const qlens = [9, 14, 1];
    const lens = prefix.map((x, i) => x + qlens[i]);
    // a pool sized for the whole contexts, with the chunk's slots poisoned until written
    const p = pagedCache(r, { blockSize, numKvHeads: kvh, headSize: hs, dtype }, lens);
    const w = kvh * hs;
    const slots: number[] = [];
    lens.forEach((len, s) => {
      for (let pos = prefix[s]; pos < len; pos++) {
        const slot = p.tables[s * p.maxBlocks + Math.floor(pos / blockSize)] * blockSize + (pos % blockSize);
        slots.push(slot);
        p.keyCache.fill(NaN, slot * w, (slot + 1) * w);
        p.valueCache.fill(NaN, slot * w, (slot + 1) * w);
      }
    });
    const tokens = slots.length;
    slots.splice(5, 0, -1); // a padding row between chunks
    const n = slots.length;
    const key = roundTrip(normal(r, n * w), dtype);
    const value = roundTrip(normal(r, n * w), dtype);
    // q rows of the real tokens only (the padding row has no query)
    const q = normal(r, tokens * numHeads * hs);
    const starts = [0, 9, 23, 24];
    const caches = cacheArgs(p);
    const scale = 1 / Math.sqrt(hs);

    const t = (h: HostTensor) => fromArray(dev, h.values, h.shape, h.dtype);
    const [kc, vc, bt] = [t(caches.keyCache), t(caches.valueCache), t(caches.blockTables)];
    const out = fromArray(dev, new Float64Array(tokens * numHeads * hs).fill(NaN), [tokens, numHeads * hs], 'f32');
    const cacheOp = { key: t(host(key, [n, w])), value: t(host(value, [n, w])), keyCache: kc, valueCache: vc, slotMapping: t(host(slots, [n], 'i32')) };
    const attnOp = { q: t(host(q, [tokens, numHeads * hs])), keyCache: kc, valueCache: vc, blockTables: bt, queryStarts: t(host(starts, [4], 'i32')), contextLens: t(host(lens, [3], 'i32')), out, scale };
    await dev.stream().op('reshape_and_cache', cacheOp).op('prefill_attention', attnOp).submit().done();

    const written = await reference('reshape_and_cache', { key: host(key, [n, w]), value: host(value, [n, w]), ...caches, slotMapping: host(slots, [n], 'i32') });
    const shape = caches.keyCache.shape;
    const want = await reference('prefill_attention', {
      q: host(q, [tokens, numHeads * hs]),
      keyCache: host(written.keyCache, shape, dtype),
      valueCache: host(written.valueCache, shape, dtype),
      blockTables: caches.blockTables,
      queryStarts: host(starts, [4], 'i32'),
      contextLens: host(lens, [3], 'i32'),
      out: output([tokens, numHeads * hs]),
      scale,
    });
    expect(rowErr(await toArray(dev, out), want.out, hs)).toBeLessThan(prefillTol(dev, dtype, hs));
  });

  it('runs on views: K and V in one pool buffer, block tables, lengths and query starts in one arena', async () => {
    // what an engine uploads once per step; on webgpu the shared buffers make every binding
    // read_write, so the kernels must keep their barriers uniform without read-only storage
    const [blockSize, numHeads, kvh, hs, dtype] = [8, 4, 2, 64, 'f32' as const];
    const lens = [19, 40, 7];
    const p = pagedCache(r, { blockSize, numKvHeads: kvh, headSize: hs, dtype }, lens);
    const shape = [p.numBlocks, p.blockSize, kvh, hs];
    const cacheLen = p.keyCache.length;
    const pool = empty(dev, [2 * cacheLen], dtype);
    const [kc, vc] = [view(pool, 0, shape), view(pool, cacheLen, shape)]; // cacheLen * 4 bytes is 256-aligned here
    dev.upload(kc, new Float32Array(p.keyCache));
    dev.upload(vc, new Float32Array(p.valueCache));
    const n = lens.length;
    const starts = [0, 3, 4, 6]; // prefill: 3, 1 and 2 new tokens
    const arena = fromArray(dev, new Int32Array(3 * 64), [3 * 64], 'i32'); // 256-byte aligned views
    const bt = view(arena, 0, [n, p.maxBlocks]);
    const cl = view(arena, 64, [n]);
    const qs = view(arena, 128, [n + 1]);
    dev.upload(bt, p.tables);
    dev.upload(cl, Int32Array.from(lens));
    dev.upload(qs, Int32Array.from(starts));
    const width = numHeads * hs;
    const qd = normal(r, n * width);
    const qp = normal(r, 6 * width);
    const outD = fromArray(dev, new Float64Array(n * width).fill(NaN), [n, width], 'f32');
    const outP = fromArray(dev, new Float64Array(6 * width).fill(NaN), [6, width], 'f32');
    const scale = 1 / Math.sqrt(hs);
    const common = { keyCache: kc, valueCache: vc, blockTables: bt, contextLens: cl, scale };
    await dev
      .stream()
      .op('paged_attention', { ...common, q: fromArray(dev, qd, [n, width], 'f32'), out: outD, partitionSize: 16 })
      .op('prefill_attention', { ...common, q: fromArray(dev, qp, [6, width], 'f32'), queryStarts: qs, out: outP })
      .submit()
      .done();
    const caches = cacheArgs(p);
    const wantD = await reference('paged_attention', { q: host(qd, [n, width]), ...caches, contextLens: host(lens, [n], 'i32'), out: output([n, width]), scale, partitionSize: 16 });
    const wantP = await reference('prefill_attention', { q: host(qp, [6, width]), ...caches, queryStarts: host(starts, [n + 1], 'i32'), contextLens: host(lens, [n], 'i32'), out: output([6, width]), scale });
    expect(rowErr(await toArray(dev, outD), wantD.out, hs)).toBeLessThan(TOL);
    expect(rowErr(await toArray(dev, outP), wantP.out, hs)).toBeLessThan(TOL);

    // reshape_and_cache into both halves of the pool (two writable views of one buffer)
    const slots = [5, -1, 2 * blockSize + 3];
    const key = normal(r, 3 * kvh * hs);
    const value = normal(r, 3 * kvh * hs);
    const sm = fromArray(dev, slots, [3], 'i32');
    await dev
      .stream()
      .op('reshape_and_cache', { key: fromArray(dev, key, [3, kvh * hs], 'f32'), value: fromArray(dev, value, [3, kvh * hs], 'f32'), keyCache: kc, valueCache: vc, slotMapping: sm })
      .submit()
      .done();
    const want = await reference('reshape_and_cache', { key: host(key, [3, kvh * hs]), value: host(value, [3, kvh * hs]), keyCache: caches.keyCache, valueCache: caches.valueCache, slotMapping: host(slots, [3], 'i32') });
    // NaN-poisoned slots stay NaN on both sides: compare with NaN as a value
    const same = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).every((x, i) => Object.is(x, b[i]) || x === b[i]);
    expect(same(await toArray(dev, kc), Float32Array.from(want.keyCache))).toBe(true);
    expect(same(await toArray(dev, vc), Float32Array.from(want.valueCache))).toBe(true);
  });

  it('supports() rejects what the kernels cannot take, with the reason', () => {
    const t = (shape: number[], dtype: DType = 'f32') => fromArray(dev, new Float64Array(shape.reduce((a, b) => a * b, 1)), shape, dtype);
    const q = t([2, 4 * 512]);
    const base = { q, keyCache: t([4, 8, 2, 512], 'f16'), valueCache: t([4, 8, 2, 512], 'f16'), blockTables: t([2, 4], 'i32'), contextLens: t([2], 'i32'), out: t([2, 4 * 512]), scale: 0.1 };
    const s = dev.supports('paged_attention', base);
    if (backend === 'webgpu') {
      expect(s.ok).toBe(false);
      if (!s.ok) expect(s.reason).toMatch(/head size 512/);
    }
    const small = { ...base, q: t([2, 4 * 64]), out: t([2, 4 * 64]), keyCache: t([4, 8, 2, 64], 'f16'), valueCache: t([4, 8, 2, 64], 'f16') };
    expect(dev.supports('paged_attention', small).ok).toBe(true);
    expect(dev.supports('paged_attention', { ...small, partitionSize: 2.5 }).ok).toBe(false);
  });

  // the two tests below are about the webgpu planner (v1/v2 choice, binding limits): other backends have neither
  it.skipIf(backend !== 'webgpu')('paged_attention plans one partition where sequences fill the GPU, partitions otherwise, and the tiled kernel for other head sizes', () => {
    const g = dev as WebGpuDevice;
    const t = (shape: number[], dtype: DType = 'f32') => fromArray(dev, new Float64Array(shape.reduce((a, b) => a * b, 1)), shape, dtype);
    // 4 heads of hs over 2 kv heads: 2 query heads per workgroup
    const args = (seqs: number, maxBlocks: number, partitionSize?: number, hs = 64) => ({
      q: t([seqs, 4 * hs]),
      keyCache: t([8, 16, 2, hs], 'f16'),
      valueCache: t([8, 16, 2, hs], 'f16'),
      blockTables: t([seqs, maxBlocks], 'i32'),
      contextLens: t([seqs], 'i32'),
      out: t([seqs, 4 * hs]),
      scale: 0.125,
      partitionSize,
    });
    const files = (d: ReturnType<typeof planPagedAttention>) => d.map((x) => x.file);
    // DECODE_FILL / 2 sequences x 2 head blocks fill the GPU with DECODE_V1_MAX keys in one partition
    const many = planPagedAttention(g, args(DECODE_FILL / 2, DECODE_V1_MAX / 16));
    expect(files(many)).toEqual(['paged_attention.wgsl']);
    expect(many[0].grid[0] * (many[0].grid[1] ?? 1)).toBeGreaterThanOrEqual(DECODE_FILL);
    // and longer contexts in partitions of DECODE_V1_MAX keys
    const longer = planPagedAttention(g, args(DECODE_FILL / 2, 64));
    expect(files(longer)).toEqual(['paged_attention.wgsl', 'paged_attention_reduce.wgsl']);
    expect(longer[0].params.partition_size).toBe(DECODE_V1_MAX);
    // few sequences: partitions, halved down to MIN_PARTITION until the launch fills the GPU
    const few = planPagedAttention(g, args(3, 64));
    expect(files(few)).toEqual(['paged_attention.wgsl', 'paged_attention_reduce.wgsl']);
    expect(few[0].params.partition_size).toBe(MIN_PARTITION);
    expect(few[0].params.partitions).toBe(1024 / MIN_PARTITION);
    // a block table past a partition's most keys splits however many sequences there are
    expect(files(planPagedAttention(g, args(DECODE_FILL, 1024)))).toEqual(['paged_attention.wgsl', 'paged_attention_reduce.wgsl']);
    // a given partition size: 10 blocks of 16 bound the context at 160 tokens
    expect(planPagedAttention(g, args(3, 10, 32))[0].params.partitions).toBe(5);
    expect(files(planPagedAttention(g, args(3, 10, 160)))).toEqual(['paged_attention.wgsl']);
    // a head size that is not 8 x a power of two
    expect(files(planPagedAttention(g, args(3, 10, 0, 96)))).toEqual(['paged_attention_tiled.wgsl']);
  });

  it.skipIf(backend !== 'webgpu')('prefill_attention plans the flash kernel for head sizes it takes, the tile loop otherwise', () => {
    const g = dev as WebGpuDevice;
    const t = (shape: number[], dtype: DType = 'f32') => fromArray(dev, new Float64Array(shape.reduce((a, b) => a * b, 1)), shape, dtype);
    const args = (hs: number) => ({
      q: t([40, 4 * hs]),
      keyCache: t([8, 16, 2, hs], 'f16'),
      valueCache: t([8, 16, 2, hs], 'f16'),
      blockTables: t([2, 4], 'i32'),
      queryStarts: t([3], 'i32'),
      contextLens: t([2], 'i32'),
      out: t([40, 4 * hs]),
      scale: 0.125,
    });
    const files = (hs: number) => planPrefillAttention(g, args(hs)).map((x) => x.file);
    const budget = g.gpu.limits.maxComputeWorkgroupStorageSize;
    // the adapter that runs the tests must run the flash kernel at these head sizes (llvmpipe:
    // 32 KiB); by default head size 128 on an f16 cache runs on the matrix units where it has them
    const mma = g.info.features.subgroupMatrix;
    for (const hs of [64, 128]) {
      expect(flashShape(budget, hs)).toBeDefined();
      expect(prefillKernel(g, hs, 'flash')).toBe('flash');
      expect(prefillKernel(g, hs, 'mma')).toBe(mma && hs === 128 ? 'mma' : 'flash');
      expect(prefillKernel(g, hs, 'mma', 'f32')).toBe('flash');
      const choice = prefillChoice(process.env.PARALLM_WGSL_PREFILL);
      if (choice === 'flash' || choice === 'mma') expect(files(hs)).toEqual([prefillKernel(g, hs, choice) === 'mma' ? 'prefill_attention_mma.wgsl' : 'prefill_attention_flash.wgsl']);
    }
    expect(prefillChoice(undefined)).toBe('mma');
    expect(prefillKernel(g, 64, 'tile')).toBe('tile');
    for (const hs of [80, 256]) {
      expect(flashShape(budget, hs)).toBeUndefined();
      expect(files(hs)).toEqual(['prefill_attention.wgsl']);
    }
    // shapes: native's 32 x 64 where 58 KB fit, smaller ones on less
    expect(flashShape(64 * 1024, 128)).toEqual({ WG: 256, HS: 128, BQ: 32, TK: 64 });
    expect(flashShape(48 * 1024, 128)).toEqual({ WG: 256, HS: 128, BQ: 32, TK: 32 });
    expect(flashShape(32 * 1024, 128)).toEqual({ WG: 128, HS: 128, BQ: 16, TK: 32 });
    expect(flashShape(48 * 1024, 64)).toEqual({ WG: 256, HS: 64, BQ: 32, TK: 64 });
    expect(() => prefillChoice('fast')).toThrow(/PARALLM_WGSL_PREFILL=fast/);
    expect(prefillChoice('flash:16x64')).toBe('flash:16x64');
    expect(() => prefillChoice('flash:24x64')).toThrow(/flash:BQxTK/);
    // a shape asked for where it fits, the default order where it does not
    expect(flashShape(64 * 1024, 128, 256, [16, 64])).toEqual({ WG: 128, HS: 128, BQ: 16, TK: 64 });
    expect(flashShape(32 * 1024, 128, 256, [32, 64])).toEqual({ WG: 128, HS: 128, BQ: 16, TK: 32 });
    expect(prefillKernel(g, 64, 'flash:16x16')).toBe('flash');
  });

  it.skipIf(backend !== 'webgpu')('a KV pool over the binding limit fails with a clear error', async () => {
    // 16 KiB bindings; the pool [16, 16, 2, 64] f32 is 128 KiB
    const small = await createDevice(backend, { maxBindingBytes: 16 * 1024 });
    try {
      const t = (shape: number[], dtype: DType = 'f32') => fromArray(small, new Float64Array(shape.reduce((a, b) => a * b, 1)), shape, dtype);
      const cache = { keyCache: t([16, 16, 2, 64]), valueCache: t([16, 16, 2, 64]), blockTables: t([2, 4], 'i32'), contextLens: t([2], 'i32') };
      const decode = () => small.stream().op('paged_attention', { q: t([2, 128]), ...cache, out: t([2, 128]), scale: 0.1 });
      expect(decode).toThrow(TensorTooLargeError);
      expect(decode).toThrow(/paged_attention: the KV cache part .* split the pool into more parts/);
      const write = () => small.stream().op('reshape_and_cache', { key: t([2, 128]), value: t([2, 128]), keyCache: cache.keyCache, valueCache: cache.valueCache, slotMapping: t([2], 'i32') });
      expect(write).toThrow(/reshape_and_cache: the KV cache/);
    } finally {
      small.destroy();
    }
  });
});

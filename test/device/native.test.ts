// The native backend's host side, without a GPU: the arena that carves device memory, and the
// op planner against the addon's own argument layouts (every op, every kernel variant), so a
// planner/addon mismatch fails here rather than on the GPU machine.

import { existsSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DeviceBuffer, DType, OpArgs, OpName, Tensor } from '../../src/device/index.ts';
import { OP_NAMES, checkOp } from '../../src/device/index.ts';
import { ALIGN, Arena } from '../../src/device/native/arena.ts';
import { DEFAULT_ADDON_PATH, type NativeAddon, loadAddon } from '../../src/device/native/addon.ts';
import { Launcher, type PlanContext, V2_MIN_CONTEXT, runOp } from '../../src/device/native/ops.ts';

/** A fake GPU allocator handing out disjoint address ranges. */
function fakeGpu() {
  let next = 1 << 20;
  const live = new Map<number, number>();
  return {
    live,
    malloc(bytes: number) {
      const p = next;
      next += bytes + (1 << 20);
      live.set(p, bytes);
      return p;
    },
    free(p: number) {
      if (!live.delete(p)) throw new Error(`free of ${p}, never allocated or freed twice`);
    },
  };
}

describe('native arena', () => {
  it('hands out aligned, disjoint ranges inside its chunks and reuses freed space', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 5000 })), { minLength: 1, maxLength: 80 }), (steps) => {
        const gpu = fakeGpu();
        const arena = new Arena(gpu, 16 * 1024);
        const held: { ptr: number; bytes: number }[] = [];
        for (const [doFree, bytes] of steps) {
          if (doFree && held.length) arena.free(held.splice(bytes % held.length, 1)[0].ptr);
          else held.push({ ptr: arena.alloc(bytes), bytes });
          const sorted = [...held].sort((a, b) => a.ptr - b.ptr);
          for (let i = 0; i < sorted.length; i++) {
            expect(sorted[i].ptr % ALIGN).toBe(0);
            if (i) expect(sorted[i - 1].ptr + sorted[i - 1].bytes).toBeLessThanOrEqual(sorted[i].ptr);
            // inside some chunk the GPU gave
            const inChunk = [...gpu.live].some(([base, size]) => sorted[i].ptr >= base && sorted[i].ptr + sorted[i].bytes <= base + size);
            expect(inChunk).toBe(true);
          }
          expect(arena.allocated).toBe(held.reduce((s, h) => s + Math.max(ALIGN, Math.ceil(h.bytes / ALIGN) * ALIGN), 0));
        }
        // everything freed: each shared chunk is one hole again (neighbours merged), so a
        // whole-chunk request needs no new chunk
        for (const h of held.splice(0)) arena.free(h.ptr);
        expect(arena.allocated).toBe(0);
        const reserved = arena.reserved;
        if (reserved > 0) {
          arena.alloc(16 * 1024);
          expect(arena.reserved).toBe(reserved);
        }
      }),
    );
  });

  it('gives an oversized request its own chunk and returns it on free', () => {
    const gpu = fakeGpu();
    const arena = new Arena(gpu, 4096);
    const small = arena.alloc(100);
    const big = arena.alloc(1 << 20);
    expect(gpu.live.size).toBe(2);
    arena.free(big);
    expect(gpu.live.size).toBe(1);
    arena.free(small);
    arena.free(small); // twice is harmless
    expect(arena.allocated).toBe(0);
    arena.release();
    expect(gpu.live.size).toBe(0);
  });
});

describe('native launcher', () => {
  const layouts = [{ name: 'copy', fields: 'x out n' }];
  const calls: [number, number[]][] = [];
  const fake = { layouts: () => layouts, launch: (op: number, a: Float64Array) => calls.push([op, Array.from(a)]) } as unknown as NativeAddon;

  it('writes named arguments in the order of the addon layout', () => {
    new Launcher(fake).launch('copy', { n: 7, out: 2, x: 1 });
    expect(calls.at(-1)).toEqual([0, [1, 2, 7]]);
  });

  it('rejects a missing, an unknown or a misspelt argument, and an unknown kernel', () => {
    const l = new Launcher(fake);
    expect(() => l.launch('copy', { x: 1, out: 2 })).toThrow(/copy\.n not given/);
    expect(() => l.launch('copy', { x: 1, out: 2, n: 3, bias: 4 })).toThrow(/copy has no argument bias/);
    expect(() => l.launch('kopy', { x: 1 })).toThrow(/no kernel 'kopy'/);
  });
});

// ---- every op through the planner, against the built addon's layouts ----

let nextBuffer = 1;
function t(shape: number[], dtype: DType = 'f32'): Tensor {
  const buffer = { id: nextBuffer++, size: 1 << 30, label: 'fake', device: undefined as never } as DeviceBuffer;
  return { buffer, offset: 0, shape, dtype };
}

function cacheArgs(dtype: DType = 'f16') {
  return { keyCache: t([8, 16, 2, 64], dtype), valueCache: t([8, 16, 2, 64], dtype) };
}

/** Valid arguments of each op (shapes checkOp accepts), with variants where the planner branches. */
function cases(blas = true): [OpName, unknown][] {
  return [
    ['embedding', { ids: t([3], 'i32'), table: t([50, 64], 'bf16'), out: t([3, 64]) }],
    ['rms_norm', { x: t([3, 64]), weight: t([64], 'f16'), out: t([3, 64]), residual: t([3, 64]), eps: 1e-5 }],
    ['rms_norm', { x: t([3, 64]), weight: t([64]), out: t([3, 64]), eps: 1e-5 }],
    ['rms_norm', { x: t([3, 64]), weight: t([64], 'bf16'), out: t([3, 64], 'bf16'), residual: t([3, 64]), eps: 1e-5 }],
    ['rope', { x: t([3, 256]), positions: t([3], 'i32'), cosSin: t([100, 64]), numHeads: 4, headSize: 64, interleaved: true }],
    ['silu_and_mul', { x: t([3, 128]), out: t([3, 64]) }],
    ['silu_and_mul', { x: t([3, 128]), out: t([3, 64], 'f16') }],
    // 16-bit activations go to the vendor BLAS only
    ...(blas ? [['matmul', { a: t([40, 64], 'f16'), w: t([32, 64], 'f16'), out: t([40, 32]) }] as [OpName, unknown]] : []),
    ...(['gemv', 'gemv_sg', 'tiled', 'sgmat', undefined] as const).flatMap((kernel) =>
      (['f32', 'f16'] as const).map((w): [OpName, unknown] => ['matmul', { a: t([kernel === 'gemv' || kernel === 'gemv_sg' ? 4 : 40, 64]), w: t([32, 64], w), bias: t([32]), out: t([kernel === 'gemv' || kernel === 'gemv_sg' ? 4 : 40, 32]), kernel }]),
    ),
    ['softmax', { x: t([3, 10]), out: t([3, 10]) }],
    ['argmax', { x: t([3, 10]), out: t([3], 'i32') }],
    ['sample', { logits: t([3, 10]), temperature: t([3]), topK: t([3], 'i32'), topP: t([3]), minP: t([3]), draws: t([3]), out: t([3], 'i32') }],
    ['apply_penalties', { logits: t([3, 10]), promptIds: t([3, 4], 'i32'), outputIds: t([3, 2], 'i32'), repetition: t([3]), frequency: t([3]), presence: t([3]), bannedIds: t([3, 0], 'i32') }],
    ['logprobs', { logits: t([3, 10]), ids: t([3], 'i32'), topN: 2, outLogprob: t([3]), outTopIds: t([3, 2], 'i32'), outTopLogprobs: t([3, 2]) }],
    ['logprobs', { logits: t([3, 10]), ids: t([3], 'i32'), topN: 0, outLogprob: t([3]) }],
    ['copy', { x: t([16]), out: t([16]) }],
    ['resolve_tokens', { ids: t([4, 3], 'i32'), sampled: t([5], 'i32') }],
    ['reshape_and_cache', { key: t([3, 128]), value: t([3, 128]), ...cacheArgs(), slotMapping: t([3], 'i32') }],
    ['qkv_rope_cache', { qkv: t([3, 256]), positions: t([3], 'i32'), cosSin: t([100, 64]), numHeads: 2, numKvHeads: 1, headSize: 64, q: t([3, 128]), keyCache: t([8, 16, 1, 64]), valueCache: t([8, 16, 1, 64]), slotMapping: t([3], 'i32') }],
    ['copy_blocks', { ...cacheArgs('f32'), pairs: t([2, 2], 'i32') }],
    ...[0, 32, undefined].flatMap((partitionSize): [OpName, unknown][] =>
      [4, V2_MIN_CONTEXT].map((maxBlocks) => ['paged_attention', { q: t([2, 256]), ...cacheArgs(), blockTables: t([2, maxBlocks], 'i32'), contextLens: t([2], 'i32'), out: t([2, 256]), scale: 0.1, partitionSize }]),
    ),
    ['prefill_attention', { q: t([5, 256]), ...cacheArgs('f32'), blockTables: t([2, 4], 'i32'), queryStarts: t([3], 'i32'), contextLens: t([2], 'i32'), out: t([5, 256]), scale: 0.1 }],
  ];
}

describe.skipIf(!existsSync(DEFAULT_ADDON_PATH))('native planner against the built addon', () => {
  it('launches every op with exactly the fields the addon reads, for every variant', () => {
    const addon = loadAddon(DEFAULT_ADDON_PATH);
    const launched: string[] = [];
    const names = addon.layouts().map((l) => l.name);
    const recorder = { ...addon, layouts: () => addon.layouts(), launch: (op: number) => launched.push(names[op]) } as NativeAddon;
    for (const blas of [true, false]) {
      const ctx: PlanContext = { launcher: new Launcher(recorder), blas, ptr: (x) => x.buffer.id * 2 ** 32 + x.offset, scratch: () => 2 ** 40 };
      for (const [name, args] of cases(blas)) {
        expect(checkOp(name, args as OpArgs[typeof name]), `${name} case`).toEqual({ ok: true });
        runOp(ctx, name, args as OpArgs[typeof name]);
      }
    }
    // every op ran, through every kernel the addon has
    expect(new Set(cases().map(([n]) => n))).toEqual(new Set(OP_NAMES));
    expect(new Set(launched)).toEqual(new Set(names));
  });
});

// Kernel lab: raw dispatches of experimental kernels in shaders/lab/ (not part of the op set),
// timed on the device. Used to choose between kernel designs; results go to docs/perf-notes.md.
//   npx tsx bench/lab.ts [wsum] [sgmat] [attn]     (no argument: every section)
import { createDevice, empty, fromArray, type Tensor, toArray } from '../src/device/index.ts';
import { planPagedAttention, planTiledDecode } from '../src/device/webgpu/attention.ts';
import type { WebGpuDevice } from '../src/device/webgpu/backend.ts';
import { type Dispatch, grid } from '../src/device/webgpu/ops.ts';

const dev = (await createDevice('webgpu')) as WebGpuDevice;
const rnd = (n: number, s = 1) => Float32Array.from({ length: n }, (_, i) => (((i * 2654435761) >>> 0) / 4294967296 - 0.5) * s);
const t = (vals: ArrayLike<number> | number, shape: number[], dt: 'f32' | 'f16' = 'f32'): Tensor =>
  typeof vals === 'number' ? empty(dev, shape, dt) : fromArray(dev, vals, shape, dt);

async function time(label: string, mk: (i: number) => Dispatch | Dispatch[], reps: number, work: { bytes?: number; flops?: number }) {
  const warm = dev.stream() as any;
  for (const d of [mk(0)].flat()) warm.dispatch(d);
  await warm.submit().done();
  const ts: number[] = [];
  for (let k = 0; k < 5; k++) {
    const s = dev.stream({ timing: true }) as any;
    for (let i = 0; i < reps; i++) for (const d of [mk(i)].flat()) s.dispatch(d);
    ts.push((await s.submit().elapsedMs()) / reps);
  }
  ts.sort((a, b) => a - b);
  const ms = ts[2];
  const extra = work.bytes ? `${(work.bytes / ms / 1e6).toFixed(0)} GB/s` : `${((work.flops ?? 0) / ms / 1e9).toFixed(1)} TFLOP/s`;
  console.log(`${label.padEnd(50)} ${ms.toFixed(4)} ms  ${extra}`);
}
const D = (file: string, tensors: Record<string, Tensor>, params: Record<string, number>, g: [number, number?], overrides: Record<string, number> = {}, flags: string[] = []): Dispatch => ({ file, flags, overrides, tensors, params, grid: g });

// warm the GPU up (clocks ramp under load) before anything is measured
{
  const n = 64 * 2 ** 20;
  const x = t(rnd(n), [n]);
  const y = t(0, [n]);
  const t0 = performance.now();
  while (performance.now() - t0 < 1500) {
    const s = dev.stream() as any;
    for (let i = 0; i < 50; i++) s.dispatch(D('copy.wgsl', { x, out: y }, { n4: n / 4 }, grid(4096)));
    await s.submit().done();
  }
  await time('copy vec4 grid-stride 4096 wg (op)', () => D('copy.wgsl', { x, out: y }, { n4: n / 4 }, grid(4096)), 20, { bytes: 8 * n });
  await time('copy vec4 flat', () => D('lab/copy_vec4_flat.wgsl', { x, out: y }, { n4: n / 4 }, grid(n / 4 / 256)), 20, { bytes: 8 * n });
  dev.free(x.buffer); dev.free(y.buffer);
}
const sections = process.argv.slice(2);
const want = (name: string) => !sections.length || sections.includes(name);

// weight streaming alone, and gemv_sg for small m
for (const [N, K] of want('wsum') ? [[4096, 4096], [11008, 4096], [4096, 11008]] : []) {
  const copies = 8;
  const ws = Array.from({ length: copies }, () => t(rnd(N * K, 0.02), [N, K], 'f16'));
  const o = t(0, [64, N]);
  const bytes = N * K * 2;
  const p = { m: 1, n: N, k: K, ldo: N, col0: 0 };
  await time(`w-only gemv shape ${N}x${K}`, (i) => D('lab/wsum.wgsl', { w: ws[i % copies], out: o }, p, grid(Math.ceil(N / 32))), 16, { bytes });
  await time(`w-only flat 4096 wg ${N}x${K}`, (i) => D('lab/wsum_flat.wgsl', { w: ws[i % copies], out: o }, p, grid(4096)), 16, { bytes });
  for (const m of [4, 8, 16, 32]) {
    const a = t(rnd(m * K), [m, K]);
    const pm = { m, n: N, k: K, ldo: N, col0: 0 };
    if (m <= 16) await time(`gemv_sg m=${m} ${N}x${K}`, (i) => D('matmul_gemv_sg.wgsl', { a, w: ws[i % copies], out: o }, pm, grid(Math.ceil(N / 16)), { ROWS: m, CPT: 4, SPLIT: 2, U: 2 }, ['W_F16']), 16, { bytes });
    dev.free(a.buffer);
  }
  for (const w of ws) dev.free(w.buffer);
  dev.free(o.buffer);
}
// subgroup-matrix matmul over m: the op's kernel (operands staged through workgroup memory with
// 16-byte loads, 128x128 tiles) against the 64x128 staged kernel before it and the kernels that
// load the matrices straight from storage (64x128 and 64x64 tiles); every variant writes a fresh
// output, checked against the op's.
if (want('sgmat')) {
  for (const [N, K] of [[4096, 4096], [11008, 4096]]) {
    const w = t(rnd(N * K, 0.02), [N, K], 'f16');
    for (const m of [256, 1024, 2048, 4096]) {
      const a16 = t(rnd(m * K), [m, K], 'f16');
      const p = { m, n: N, k: K, ldo: N, col0: 0 };
      const variants: [string, string, number, number, Record<string, number>][] = [
        ['sgmat op: staged 128x128 BK32, prefetch', 'matmul_sgmat.wgsl', 128, 128, {}],
        ['sgmat staged 64x128 BK32', 'lab/sgmat_staged_64x128.wgsl', 64, 128, { BK: 32 }],
        ['sgmat staged 64x128 BK64', 'lab/sgmat_staged_64x128.wgsl', 64, 128, { BK: 64 }],
        ['sgmat direct 64x128', 'lab/sgmat_direct_64x128.wgsl', 64, 128, {}],
        ['sgmat direct 64x64', 'lab/sgmat_direct.wgsl', 64, 64, {}],
      ];
      let ref: Float32Array | undefined;
      for (const [label, file, tm, tn, ov] of variants) {
        const o = t(0, [m, N]);
        const tiles = Math.ceil(N / tn);
        const mk = () => D(file, { a: a16, w, out: o }, { ...p, tiles_n: tiles, tiles: Math.ceil(m / tm) * tiles, k_chunk: K, split_stride: 0 }, grid(Math.ceil(m / tm) * tiles), ov, ['W_F16']);
        try {
          await time(`${label} m=${m} ${N}x${K}`, mk, 5, { flops: 2 * m * N * K });
          const y = (await toArray(dev, o)) as Float32Array;
          if (!ref) ref = y;
          else {
            let worst = 0;
            for (let i = 0; i < y.length; i++) worst = Math.max(worst, Math.abs(y[i] - ref[i]));
            console.log(`  max |diff| vs the op kernel: ${worst.toExponential(2)}`);
          }
        } catch (e) {
          console.log(`${label} m=${m} ${N}x${K}: FAILED ${(e as Error).message.slice(0, 400)}`);
        }
        dev.free(o.buffer);
      }
      dev.free(a16.buffer);
    }
    dev.free(w.buffer);
  }
}
// decode attention (LLaMA-2-7B: 32 heads of 128, f16 cache in blocks of 16): the planner's
// choice, the tiled kernel it replaced, and paged_attention.wgsl with other keys in flight per
// lane (KPL) or partition sizes. Bytes: K and V of every sequence's context, q and out.
if (want('attn')) {
  const [heads, hs, bs] = [32, 128, 16];
  const cases: [number, number][] = [[1, 1024], [16, 1024], [64, 1024], [128, 1024], [200, 512], [256, 1024], [16, 4096], [1, 16384]];
  for (const [b, ctx] of cases) {
    const per = ctx / bs;
    const shape = [b * per, bs, heads, hs];
    const n = b * per * bs * heads * hs;
    const keyCache = t(rnd(n), shape, 'f16');
    const valueCache = t(rnd(n, 0.5), shape, 'f16');
    const blockTables = fromArray(dev, Int32Array.from({ length: b * per }, (_, i) => i), [b, per], 'i32');
    const contextLens = fromArray(dev, new Array(b).fill(ctx), [b], 'i32');
    const q = t(rnd(b * heads * hs), [b, heads * hs]);
    const out = t(0, [b, heads * hs]);
    const args = (partitionSize = 0) => ({ q, keyCache, valueCache, blockTables, contextLens, out, scale: 1 / Math.sqrt(hs), partitionSize });
    const bytes = 2 * n * 2 + 2 * b * heads * hs * 4;
    const label = `${b} x ${ctx}`;
    const plan = planPagedAttention(dev, args());
    const p0 = plan[0].params;
    await time(`attn ${label} planned (ps ${p0.partition_size}, ${p0.partitions} parts)`, () => plan, 10, { bytes });
    await time(`attn ${label} tiled`, () => planTiledDecode(dev, args()), 10, { bytes });
    for (const KPL of [1, 2, 8]) {
      const v = plan.map((d, i) => (i === 0 ? { ...d, overrides: { ...d.overrides, KPL } } : d));
      await time(`attn ${label} KPL ${KPL}`, () => v, 10, { bytes });
    }
    for (const ps of [128, 256, 512, 1024, 2048]) {
      if (ps >= ctx * 2) continue;
      const v = planPagedAttention(dev, args(ps));
      await time(`attn ${label} partitions of ${ps}`, () => v, 10, { bytes });
    }
    for (const x of [keyCache, valueCache, blockTables, contextLens, q, out]) dev.free(x.buffer);
  }
}

dev.destroy();
process.exit(0);

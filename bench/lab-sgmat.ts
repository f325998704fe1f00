// Subgroup-matrix matmul lab: the op's kernel (matmul_sgmat.wgsl, launched as the planner launches
// it, split k included) and the 64 x 128 kernel before it (shaders/lab/sgmat_staged_64x128.wgsl)
// against the variants shaders/lab/sgmat_v2_*.wgsl, which it writes from bench/lab-sgmat-gen.ts
// (untracked; the generator says what each changes), on the LLaMA-2-7B projections at decode-batch and prefill rows.
// One line per (variant, shape): ms, TFLOP/s, and the largest error of 256 sampled outputs
// against a float64 product of the same f16 inputs on the host (FAIL past 1e-2), plus a count
// of outputs left unwritten (the output is filled with NaN before the checked launch). The
// sgmat_v2_ab_* ablations (no multiplies; no staging) split the time of sgmat_v2_swz in two; their
// output is wrong by design and not counted as a failure.
// Each case runs back to back for --warm-ms (400) before it is timed; "first" is its first timing.
// The variants split k until --min-wg (528, as the planner) workgroups; the op's kernel as the planner does.
//   npx tsx bench/lab-sgmat.ts [--quick] [--warm-ms=400] [--only=name,name] [--m=64,2048] [--shapes=4096x4096] [--min-wg=264]
import { createDevice, empty, f16BitsToF32, type Tensor, tileBits, toArray } from '../src/device/index.ts';
import type { WebGpuDevice } from '../src/device/webgpu/backend.ts';
import { SG_TILE_M, SG_TILE_N, sgmatSplits, splitkReduce } from '../src/device/webgpu/matmul.ts';
import { type Dispatch, grid } from '../src/device/webgpu/plan.ts';
import { generate, type SgVariant, SHADER_LAB_DIR, smemBytes, tileOf, VARIANTS } from './lab-sgmat-gen.ts';
import { randF16 } from './lab-rand.ts';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const opt = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const quick = args.includes('--quick');
const warmMs = Number(opt('warm-ms') ?? (quick ? 0 : 400));
const only = opt('only')?.split(',');
const ms_ = opt('m')?.split(',').map(Number) ?? [64, 128, 256, 2048];
const shapes: [number, number][] = (opt('shapes')?.split(',') ?? ['4096x4096', '11008x4096', '4096x11008', '12288x4096', '22016x4096']).map((s) => s.split('x').map(Number) as [number, number]);

// the variants are generated here, not kept in git: the generator is their only source
for (const v of VARIANTS) writeFileSync(join(SHADER_LAB_DIR, `${v.name}.wgsl`), generate(v));
// and variants of the op's own kernel, derived from its source (untracked): stores with no edge
// path (wrong on tiles that cross m or n; the lab's shapes have none), the k-steps of a slice
// unrolled by hand, and both
const opSource = readFileSync(join(SHADER_LAB_DIR, '..', 'matmul_sgmat.wgsl'), 'utf8');
const noEdge = (src: string) => src.replace(/, inside, sg, lane, sgs\)/g, ', true, sg, lane, sgs)');
const unrollKs = (src: string) =>
  src.replace(/ {4}for \(var ks = 0u; ks < BK; ks \+= 16u\) \{\n([\s\S]*?)\n {4}\}\n {4}workgroupBarrier\(\);/, (_m, body: string) => {
    const step = (ks: number) => body.replace(/\bks\b/g, `${ks}u`).replace(/\blet (l|q)(\d)\b/g, `let $1$2_${ks}`).replace(/\b(l|q)(\d)(?=[,)])/g, `$1$2_${ks}`);
    return `${step(0)}\n${step(16)}\n    workgroupBarrier();`;
  });
// (variants without the early exit, with the generator's nesting of the next slice's loads,
// with inline guarded loads and without the lane builtin were timed at ec80f67, and the op
// kernel took all four: perf-notes, session 6)
const OP_VARIANTS: [string, string][] = [
  ['sgmat_op_noedge', noEdge(opSource)],
  ['sgmat_op_unroll', unrollKs(opSource)],
  ['sgmat_op_both', unrollKs(noEdge(opSource))],
];
for (const [name, src] of OP_VARIANTS) {
  if (src === opSource) throw new Error(`${name}: the transform did not apply to matmul_sgmat.wgsl`);
  writeFileSync(join(SHADER_LAB_DIR, `${name}.wgsl`), src);
}

const dev = (await createDevice('webgpu')) as WebGpuDevice;
const gpuDev = (dev as any).gpu as GPUDevice;
const limit = gpuDev.limits.maxComputeWorkgroupStorageSize;
console.log(`device: ${JSON.stringify({ backend: dev.info.backend, subgroupMatrix: dev.info.features.subgroupMatrix, maxComputeWorkgroupStorageSize: limit })}`);
const adapterInfo = dev.ctx.adapter.info as any;
if (adapterInfo) console.log(`adapter: ${adapterInfo.vendor} ${adapterInfo.architecture} ${adapterInfo.description}; subgroup matrix configs ${JSON.stringify((adapterInfo.subgroupMatrixConfigs ?? []).map((c: any) => `${c.componentType}->${c.resultComponentType} ${c.M}x${c.N}x${c.K}`))}`);
if (!dev.info.features.subgroupMatrix) {
  console.log('FAIL: this adapter has no usable subgroup matrices (f16 16x16x16, 32-wide subgroups): nothing to time');
  dev.destroy();
  process.exit(1);
}

function upload(bits: Uint16Array, shape: number[]): Tensor {
  const t = empty(dev, shape, 'f16');
  dev.upload(t, bits);
  return t;
}

/** The median timing after the warm-up, and the first timing (before it). */
async function timeIt(mk: (i: number) => Dispatch[], trials = quick ? 1 : 5): Promise<{ ms: number; firstMs: number }> {
  const run = async (reps: number, timing: boolean) => {
    const s = dev.stream({ timing }) as any;
    for (let i = 0; i < reps; i++) for (const d of mk(i)) s.dispatch(d);
    const c = s.submit();
    return timing ? (await c.elapsedMs()) / reps : (await c.done(), 0);
  };
  await run(1, false);
  const est = await run(2, true);
  const reps = Math.max(2, Math.min(quick ? 4 : 40, Math.ceil((quick ? 2 : 6) / Math.max(est, 1e-3))));
  // steady state: the plan runs back to back for warmMs before it is timed (the first launches
  // after buffers are made, or after the GPU idled, run several times slower: perf-notes)
  for (const t0 = performance.now(); performance.now() - t0 < warmMs; ) await run(reps, false);
  const ts: number[] = [];
  for (let k = 0; k < trials; k++) ts.push(await run(reps, true));
  ts.sort((x, y) => x - y);
  return { ms: ts[Math.floor(ts.length / 2)], firstMs: est };
}

const D = (file: string, tensors: Record<string, Tensor>, params: Record<string, number>, g: [number, number?], flags: string[] = [], overrides: Record<string, number> = {}): Dispatch => ({ file, flags, overrides, tensors, params, grid: g });

// warm the GPU up (clocks ramp under load) before anything is measured
{
  const n = 64 * 2 ** 20;
  const x = empty(dev, [n], 'f32');
  const y = empty(dev, [n], 'f32');
  const t0 = performance.now();
  while (performance.now() - t0 < (quick ? 200 : 1500)) {
    const s = dev.stream() as any;
    for (let i = 0; i < 50; i++) s.dispatch(D('copy.wgsl', { x, out: y }, { n4: n / 4 }, grid(4096)));
    await s.submit().done();
  }
  const { ms } = await timeIt(() => [D('copy.wgsl', { x, out: y }, { n4: n / 4 }, grid(4096))]);
  console.log(`copy ${(8 * n / ms / 1e6).toFixed(0)} GB/s (warm-up done)`);
  dev.free(x.buffer);
  dev.free(y.buffer);
}

/** k-chunks for a variant: as the planner's sgmatSplits (k-chunks until ~528 workgroups), at its own tile count and BK. */
const MIN_WG = Number(opt('min-wg') ?? 528);
function splitsFor(tiles: number, k: number, bk: number, minWg = MIN_WG, maxSplits = 8) {
  let splits = 1;
  while (splits < maxSplits && tiles * splits < minWg && k / (splits * 2) >= 256) splits *= 2;
  const chunk = Math.ceil(k / splits / bk) * bk;
  return { splits: Math.ceil(k / chunk), chunk };
}

interface Plan {
  label: string;
  mk: (w: Tensor) => Dispatch[];
  /** the w copies it runs on, if not the row-major ones (a tiled variant's) */
  ws?: Tensor[];
  /** a timing ablation: its output is wrong by design */
  ablation?: boolean;
}

const lines: string[] = [];
let failures = 0;
const mMax = Math.max(...ms_);
for (const [N, K] of shapes) {
  const wBytes = N * K * 2;
  const copies = quick ? 1 : Math.max(2, Math.ceil((256 * 2 ** 20) / wBytes));
  const wBits = Array.from({ length: copies }, () => randF16(N * K, -8, 4));
  const ws = wBits.map((b) => upload(b, [N, K]));
  const mPadMax = Math.ceil(mMax / 256) * 256;
  const aBits = randF16(mPadMax * K, -4, 4);
  for (const m of ms_) {
    const mPad = Math.ceil(m / 256) * 256; // a multiple of every variant's TM
    const a = upload(aBits.subarray(0, mPad * K).map((x, i) => (i < m * K ? x : 0)), [mPad, K]);
    const a0 = a;
    const out = empty(dev, [mPad, N], 'f32');
    // split-k partials: [splits, rows, N] per plan that splits
    const parts: Tensor[] = [];
    const partOf = (splits: number, rows: number): Tensor => {
      parts.push(empty(dev, [splits, rows, N], 'f32'));
      return parts[parts.length - 1];
    };
    const flops = 2 * m * N * K;
    // tiled copies of a and w for the 'tiled' variants, per tile height (made on first use)
    const tiledA = new Map<number, Tensor>();
    const tiledW = new Map<number, Tensor[]>();
    const aTiled = (t: number) => {
      if (!tiledA.has(t)) tiledA.set(t, upload(tileBits(aBits.subarray(0, mPad * K).map((x, i) => (i < m * K ? x : 0)), mPad, K, t), [mPad, K]));
      return tiledA.get(t)!;
    };
    const wTiled = (t: number) => {
      if (!tiledW.has(t)) tiledW.set(t, wBits.map((b) => upload(tileBits(b, N, K, t), [N, K])));
      return tiledW.get(t)!;
    };
    const plans: Plan[] = [];
    // the op's kernel, launched as planMatmul does (a padded to SG_TILE_M rows; split k by
    // sgmatSplits), and the 64 x 128 kernel it replaced, launched as the planner launched it
    for (const [label, file, tm] of [
      [`matmul_sgmat (op) ${SG_TILE_M}x${SG_TILE_N}`, 'matmul_sgmat.wgsl', SG_TILE_M],
      ['sgmat_staged_64x128 (previous op)', 'lab/sgmat_staged_64x128.wgsl', 64],
      ...OP_VARIANTS.filter(([name]) => !only || only.includes(name)).map(([name]) => [name, `lab/${name}.wgsl`, SG_TILE_M] as const),
    ] as const) {
      const tilesN = Math.ceil(N / SG_TILE_N);
      const tiles = Math.ceil(m / tm) * tilesN;
      const { splits, chunk } = opt('min-wg') ? splitsFor(tiles, K, 32) : sgmatSplits(tiles, K);
      const p = { m, n: N, k: K, ldo: N, col0: 0, tiles_n: tilesN, tiles };
      const part = splits > 1 ? partOf(splits, m) : out;
      const ov: Record<string, number> = tm === 64 ? { BK: 32 } : {};
      plans.push({
        label: `${label}${splits > 1 ? ` split ${splits}` : ''}`,
        mk: (w) =>
          splits === 1
            ? [D(file, { a, w, out }, { ...p, k_chunk: K, split_stride: 0 }, grid(tiles), ['W_F16'], ov)]
            : [
                D(file, { a, w, out: part }, { ...p, k_chunk: chunk, split_stride: m * N }, grid(tiles * splits), [], ov),
                splitkReduce(part, out, undefined, m, N, N, 0, splits),
              ],
      });
    }
    for (const v of VARIANTS as SgVariant[]) {
      if (only && !only.includes(v.name)) continue;
      if (smemBytes(v) > limit) {
        lines.push(`${v.name.padEnd(34)} skipped: ${smemBytes(v)} B of workgroup memory > limit ${limit}`);
        console.log(lines[lines.length - 1]);
        continue;
      }
      const { tm, tn } = tileOf(v);
      if (N % tn) continue;
      const mp = Math.ceil(m / tm) * tm;
      const tilesN = N / tn;
      const tiles = (mp / tm) * tilesN;
      const { splits, chunk } = splitsFor(tiles, K, v.bk);
      const p = { m: mp, n: N, k: K, ldo: N, col0: 0, tiles_n: tilesN, tiles };
      const file = `lab/${v.name}.wgsl`;
      const part = splits > 1 ? partOf(splits, mp) : out;
      const a = v.layout === 'tiled' || v.layout === 'tiled-a' ? aTiled(tm) : a0;
      plans.push({
        ws: v.layout === 'tiled' || v.layout === 'tiled-w' ? wTiled(tn) : undefined,
        ablation: !!v.ablate,
        label: `${v.name} ${tm}x${tn}${splits > 1 ? ` split ${splits}` : ''}`,
        mk: (w) =>
          splits === 1
            ? [D(file, { a, w, out }, { ...p, k_chunk: K, split_stride: 0 }, grid(tiles))]
            : [
                D(file, { a, w, out: part }, { ...p, k_chunk: chunk, split_stride: mp * N }, grid(tiles * splits)),
                splitkReduce(part, out, undefined, mp, N, N, 0, splits),
              ],
      });
    }
    // sampled reference in float64 from the same f16 bits (against copy 0 of w)
    const samples = Array.from({ length: 256 }, (_, i) => [(i * 7919 + 13) % m, (i * 104729 + 7) % N]);
    const ref = samples.map(([r, c]) => {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += f16BitsToF32(aBits[r * K + k]) * f16BitsToF32(wBits[0][c * K + k]);
      return acc;
    });
    const refMax = Math.max(...ref.map(Math.abs));
    const nanBits = new Uint32Array(mPad * N).fill(0x7fc00000);
    for (const pl of plans) {
      const ablation = !!pl.ablation;
      const label = `${pl.label.padEnd(34)} m=${String(m).padEnd(5)} ${N}x${K}`;
      try {
        const wsOf = pl.ws ?? ws;
        const { ms, firstMs } = await timeIt((i) => pl.mk(wsOf[i % copies]));
        // the checked launch: out filled with NaN first, then one launch on copy 0
        dev.upload(out, nanBits);
        const s = dev.stream() as any;
        for (const d of pl.mk(wsOf[0])) s.dispatch(d);
        await s.submit().done();
        const y = (await toArray(dev, out)) as Float32Array;
        let unwritten = 0;
        for (let r = 0; r < m; r++) for (let c = 0; c < N; c++) if (Number.isNaN(y[r * N + c])) unwritten++;
        let err = 0;
        samples.forEach(([r, c], i) => {
          const e = Math.abs(y[r * N + c] - ref[i]) / refMax;
          err = Math.max(err, Number.isNaN(e) ? Infinity : e);
        });
        const bad = !ablation && (err > 1e-2 || unwritten > 0);
        if (bad) failures++;
        lines.push(`${label}  ${ms.toFixed(4)} ms  ${(flops / ms / 1e9).toFixed(1).padStart(6)} TFLOP/s (first ${(flops / firstMs / 1e9).toFixed(1)})  relErr ${err.toExponential(1)}${unwritten ? ` unwritten ${unwritten}` : ''}${bad ? '  FAIL' : ''}${ablation ? '  (ablation: output wrong by design)' : ''}`);
      } catch (e) {
        failures++;
        lines.push(`${label}  FAIL (error) ${(e as Error).message.replace(/\s+/g, ' ').slice(0, 300)}`);
      }
      console.log(lines[lines.length - 1]);
    }
    dev.free(a.buffer);
    for (const t of tiledA.values()) dev.free(t.buffer);
    for (const c of tiledW.values()) for (const t of c) dev.free(t.buffer);
    dev.free(out.buffer);
    for (const t of parts) dev.free(t.buffer);
  }
  for (const w of ws) dev.free(w.buffer);
}
console.log(failures ? `\n${failures} FAIL line(s)` : '\nall checked outputs within 1e-2');
dev.destroy();
process.exit(failures ? 1 : 0);

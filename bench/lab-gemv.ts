// Decode matmul lab (1-16 rows): the planner's kernel, the kernel main chose before
// matmul_gemv_rows (gemv_sg up to 8 rows, the matrix units above), and matmul_gemv_rows in several
// launch shapes, against a copy of the same byte count, on the LLaMA-2-7B projections, the fused
// q/k/v and gate+up weights and the lm_head. One line per (variant, m, shape): ms, GB/s (weight
// bytes + activation bytes over the time), % of the copy ceiling measured at the start, the
// largest error of sampled outputs against a float64 product of the same inputs on the host
// (FAIL past 1e-2), and the count of outputs left unwritten (out is filled with NaN before the
// checked launch). Each case runs 300 ms before it is timed (the clocks ramp), then the median of
// 5 trials of 50 back-to-back launches (3 streams in flight) by GPU timestamps, rotating copies
// of the weights (> 150 MB in all) so that L2 (50 MB on an H100) does not hold them.
//   npx tsx bench/lab-gemv.ts [--quick] [--smoke] [--out FILE] [--m=1,16] [--shapes=4096x4096] [--only=planner,g4s8]
//     [--mma-cf=4] [--mma-sub=1,2] [--mma-splits=4,16,64]
// --quick: 2 trials and 100 ms warm-ups; --smoke: one tiny shape (what CI runs on llvmpipe);
// --only: substrings of the labels to time (`copy` for the copy lines). About 2-3 minutes on an H100.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createDevice, empty, f16BitsToF32, type Tensor, toArray } from '../src/device/index.ts';
import type { WebGpuDevice } from '../src/device/webgpu/backend.ts';
import { type GemvMmaShape, gemvMmaUnfit, gemvOrder, gemvRowsUnfit, matmulUnsupported, planGemvMma, planGemvRows } from '../src/device/webgpu/matmul.ts';
import { type Dispatch, grid, planOp } from '../src/device/webgpu/ops.ts';
import { VARIANTS } from './lab-gemv-variants.ts';
import { randF16 } from './lab-rand.ts';

const args = process.argv.slice(2);
const opt = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : undefined);
const smoke = args.includes('--smoke');
const quick = args.includes('--quick') || smoke;
const outFile = opt('out');
const only = opt('only')?.split(',');
const list = (name: string, dflt: number[]) => opt(name)?.split(',').map(Number) ?? dflt;
const ms_ = list('m', smoke ? [1, 3, 16] : [1, 2, 4, 8, 16]);
const shapes: [number, number][] = (opt('shapes')?.split(',') ?? (smoke ? ['200x288'] : ['4096x4096', '11008x4096', '4096x11008', '12288x4096', '22016x4096', '32000x4096'])).map(
  (s) => s.split('x').map(Number) as [number, number],
);
const mmaCf = list('mma-cf', [1, 2, 4]) as GemvMmaShape['CF'][];
const mmaSub = list('mma-sub', [1, 2]) as GemvMmaShape['SUB'][];
const mmaSplits = list('mma-splits', [1, 2, 4, 8]);
const WARM_MS = smoke ? 0 : quick ? 100 : 300;
const TRIALS = smoke ? 1 : quick ? 2 : 5;
const REPS = smoke ? 2 : 50;
const ROTATE_BYTES = smoke ? 0 : 150e6;


const lines: string[] = [];
const say = (s: string) => {
  lines.push(s);
  console.log(s);
};
const flush = () => outFile && writeFileSync(outFile, lines.join('\n') + '\n');

const dev = (await createDevice('webgpu')) as WebGpuDevice;
const info = dev.ctx.adapter.info as GPUAdapterInfo;
// the GPU machine's tree has no .git: PARALLM_COMMIT names it there
let commit = process.env.PARALLM_COMMIT ?? 'unknown';
try {
  commit = process.env.PARALLM_COMMIT ?? execFileSync('git', ['rev-parse', '--short', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
} catch {}
say(`# npx tsx bench/lab-gemv.ts ${args.join(' ')}  (commit ${commit}, ${new Date().toISOString()})`);
say(`# device: ${dev.info.name}, ${dev.info.description}; subgroups ${dev.info.features.subgroups} (sizes ${info.subgroupMinSize ?? '?'}-${info.subgroupMaxSize ?? '?'}), subgroup matrices ${dev.info.features.subgroupMatrix}, timestamps ${dev.info.features.timestamps}`);
if (dev.ctx.backend !== 'vulkan') say(`# note: Dawn ${dev.ctx.backend}, not Vulkan: figures are not the GPU's`);
if (!dev.info.features.subgroups) say('# note: no subgroups: matmul_gemv_rows reduces its lanes through workgroup memory');
if (process.env.PARALLM_GEMV) say(`# PARALLM_GEMV=${process.env.PARALLM_GEMV}`);

function randF32(n: number): Float32Array {
  const bits = randF16(n, -2, 3);
  return Float32Array.from(bits, f16BitsToF32);
}

const gb = (x: number) => (x >= 100 ? x.toFixed(0) : x.toPrecision(3)).padStart(5);
const D = (file: string, tensors: Record<string, Tensor>, params: Record<string, number>, g: [number, number?]): Dispatch => ({ file, flags: [], overrides: {}, tensors, params, grid: g });

/**
 * Median per-launch ms of `REPS` back-to-back launches of mk(i), after WARM_MS of the same.
 * Streams are submitted ahead (3 in flight) so that the GPU never idles between them: its SM
 * clock follows its load, and one stream awaited at a time left an H100 at 345-1,400 MHz of
 * 1,980 (perf-notes, session 7).
 */
async function timeIt(mk: (i: number) => Dispatch[]): Promise<number> {
  const run = async () => {
    const s = dev.stream({ timing: true });
    for (let i = 0; i < REPS; i++) for (const d of mk(i)) s.dispatch(d);
    return (await s.submit().elapsedMs()) / REPS;
  };
  const inflight: Promise<number>[] = [];
  const t0 = performance.now();
  do {
    while (inflight.length < 3) inflight.push(run());
    await inflight.shift();
  } while (performance.now() - t0 < WARM_MS);
  const ts = await Promise.all(Array.from({ length: TRIALS }, run));
  await Promise.all(inflight);
  ts.sort((x, y) => x - y);
  return ts[Math.floor(ts.length / 2)];
}

// the copy ceiling: 2 x 256 MiB (read + written; less where a binding is smaller), after the clocks have ramped
let copyGBps: number;
{
  const n = smoke ? 2 ** 20 : Math.min(64 * 2 ** 20, Math.floor(dev.info.maxBindingBytes / 4 / 1024) * 1024);
  const x = empty(dev, [n], 'f32');
  const y = empty(dev, [n], 'f32');
  const t0 = performance.now();
  while (performance.now() - t0 < (smoke ? 0 : quick ? 300 : 1500)) {
    const s = dev.stream();
    for (let i = 0; i < 20; i++) s.dispatch(D('copy.wgsl', { x, out: y }, { n4: n / 4 }, grid(4096)));
    await s.submit().done();
  }
  const ms = await timeIt(() => [D('copy.wgsl', { x, out: y }, { n4: n / 4 }, grid(4096))]);
  copyGBps = (8 * n) / ms / 1e6;
  say(`# copy ceiling ${gb(copyGBps)} GB/s (${(8 * n) / 2 ** 20} MiB moved per launch); each case's % below is of it`);
  dev.free(x.buffer);
  dev.free(y.buffer);
}

interface Plan {
  label: string;
  mk: (w: Tensor) => Dispatch[];
  /** runs on the tiled copies of the weights (WebGpuDevice.tileWeight), labelled '[tiled w]' */
  tiled?: boolean;
}

let failures = 0;
const best = new Map<string, { label: string; gbps: number }>();
for (const [N, K] of shapes) {
  const wBytes = N * K * 2;
  const copies = Math.max(1, Math.ceil(ROTATE_BYTES / wBytes));
  const wBits = randF16(N * K, -8, 4);
  const ws = Array.from({ length: copies }, () => {
    const t = empty(dev, [N, K], 'f16');
    dev.upload(t, wBits);
    return t;
  });
  // the same weights in the tiled layout the device packs them into where it has subgroup
  // matrices (k % 32 == 0): the planner and the gemv_rows variants run on both
  const wts = K % 32 === 0 && !args.includes('--no-tiled') ? ws.map((w) => dev.tileWeight(w)) : [];
  // the copy reference reads from the weight copies (as f32) and writes to a ring of its own
  const mMax = Math.max(...ms_);
  const halfMax = Math.ceil((wBytes + mMax * K * 4) / 2 / 16) * 16;
  const dsts = Array.from({ length: copies }, () => empty(dev, [halfMax / 4], 'f32'));
  say(`\n# ${N} x ${K} f16 weights (${(wBytes / 1e6).toFixed(1)} MB, ${copies} cop${copies > 1 ? 'ies' : 'y'} rotated)`);
  for (const m of ms_) {
    const aVals = randF32(m * K);
    const a = empty(dev, [m, K], 'f32');
    dev.upload(a, aVals);
    const out = empty(dev, [m, N], 'f32');
    const bytes = wBytes + m * K * 4;
    const args = (w: Tensor) => ({ a, w, out });
    const plans: Plan[] = [];
    const planned = planOp(dev, 'matmul', args(ws[0]));
    const kernels = planned.map((d) => {
      const name = d.file.replace(/^matmul_|\.wgsl$/g, '');
      const o = d.overrides;
      return d.file === 'matmul_gemv_rows.wgsl' ? `${name} g${o.G}s${o.SLOTS}k${o.KS}u${o.U}` : name;
    });
    plans.push({ label: `planner: ${kernels.join('+')}`, mk: (w) => planOp(dev, 'matmul', args(w)) });
    if (wts.length) plans.push({ label: `planner: ${kernels.join('+')}`, mk: (w) => planOp(dev, 'matmul', args(w)), tiled: true });
    const before = gemvOrder('sg', m).find((kn) => !matmulUnsupported(dev, args(ws[0]), kn));
    if (before) plans.push({ label: `main: ${before}`, mk: (w) => planOp(dev, 'matmul', { ...args(w), kernel: before }) });
    for (const v of VARIANTS) {
      const unfit = gemvRowsUnfit(dev, m, v.shape);
      if (unfit) {
        say(`${`rows ${v.name}`.padEnd(30)} m=${String(m).padEnd(3)} ${N}x${K}  skipped: ${unfit}`);
        continue;
      }
      const n = planGemvRows(dev, args(ws[0]), v.shape).length;
      plans.push({ label: `rows ${v.name}${n > 1 ? ' (+reduce)' : ''}`, mk: (w) => planGemvRows(dev, args(w), v.shape) });
      if (wts.length) plans.push({ label: `rows ${v.name}${n > 1 ? ' (+reduce)' : ''}`, mk: (w) => planGemvRows(dev, args(w), v.shape), tiled: true });
    }
    // matmul_gemv_mma (the matrix units): 16, 32 or 64 columns per workgroup (--mma-cf), 4 or 8
    // loads of w in flight a thread (--mma-sub), k split 1-8 ways (--mma-splits), on the tiled
    // weights too where the device packs them
    if (dev.info.features.subgroupMatrix) {
      for (const CF of mmaCf) {
        for (const SUB of mmaSub) {
          for (const splits of mmaSplits) {
            const shape = { CF, SUB, splits };
            if (gemvMmaUnfit(dev, m, shape)) continue;
            const n = planGemvMma(dev, args(ws[0]), shape).length;
            const label = `mma c${16 * CF}s${SUB}${splits > 1 ? `-split${splits}` : ''}${n > 1 ? ' (+reduce)' : ''}`;
            const mk = (w: Tensor) => planGemvMma(dev, args(w), shape);
            plans.push({ label, mk });
            if (wts.length) plans.push({ label, mk, tiled: true });
          }
        }
      }
    }
    // the lab's variant with matrix loads straight from storage (shaders/lab/gemv_mma_direct.wgsl)
    if (dev.info.features.subgroupMatrix && N % 16 === 0) {
      for (const U of [1, 2]) {
        for (const splits of [1, 2, 4]) {
          const step = 256 * U;
          if (K % (64 * U)) continue;
          const chunk = Math.ceil(K / splits / step) * step;
          const sp = Math.ceil(K / chunk);
          const wgsN = N / 16;
          const mk = (w: Tensor): Dispatch[] => {
            // asked for when the variant is planned: a later, larger request replaces the buffer
            const a16 = dev.scratch('lab.mmad.a', [16, K], 'f16');
            const part = dev.scratch('lab.mmad.part', [sp * m * N], 'f32');
            const cast: Dispatch = { file: 'cast_f16.wgsl', flags: [], overrides: {}, tensors: { x: a, out: a16 }, params: { m, k4: K / 4, m_pad: 16 }, grid: grid(Math.ceil((16 * K) / 4 / 256)) };
            const params = { m, n: N, k: K, wgs_n: wgsN, k_chunk: chunk };
            if (sp === 1) return [cast, { file: 'lab/gemv_mma_direct.wgsl', flags: [], overrides: { ROWS: m, U }, tensors: { a: a16, w, out }, params: { ...params, ldo: N, col0: 0, split_stride: 0 }, grid: grid(wgsN) }];
            return [
              cast,
              { file: 'lab/gemv_mma_direct.wgsl', flags: [], overrides: { ROWS: m, U }, tensors: { a: a16, w, out: part }, params: { ...params, ldo: N, col0: 0, split_stride: m * N }, grid: grid(wgsN * sp) },
              { file: 'matmul_splitk_reduce.wgsl', flags: [], overrides: {}, tensors: { part, out }, params: { m, n: N, ldo: N, col0: 0, splits: sp }, grid: grid(Math.ceil((m * N) / 256)) },
            ];
          };
          plans.push({ label: `mmad u${U}${sp > 1 ? `-split${sp} (+reduce)` : ''} (+cast)`, mk });
        }
      }
    }
    const filtered = only ? plans.filter((p) => only.some((o) => p.label.includes(o))) : plans;

    // sampled float64 reference (against copy 0 of w), edges included
    const samples = Array.from({ length: 64 }, (_, i) => (i === 0 ? [m - 1, N - 1] : [(i * 7919 + 13) % m, (i * 104729 + 7) % N]));
    const ref = samples.map(([r, c]) => {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += aVals[r * K + k] * f16BitsToF32(wBits[c * K + k]);
      return acc;
    });
    const refMax = Math.max(...ref.map(Math.abs));
    const nan = new Uint32Array(m * N).fill(0x7fc00000);
    const key = `m=${m} ${N}x${K}`;
    for (const p of filtered) {
      const label = `${(p.label + (p.tiled ? ' [tiled w]' : '')).padEnd(30)} m=${String(m).padEnd(3)} ${N}x${K}`;
      try {
        const plan = (p.tiled ? wts : ws).map((w) => p.mk(w));
        const ms = await timeIt((i) => plan[i % copies]);
        dev.upload(out, nan);
        const s = dev.stream();
        for (const d of plan[0]) s.dispatch(d);
        await s.submit().done();
        const y = (await toArray(dev, out)) as Float32Array;
        let unwritten = 0;
        for (let i = 0; i < y.length; i++) if (Number.isNaN(y[i])) unwritten++;
        let err = 0;
        samples.forEach(([r, c], i) => {
          const e = Math.abs(y[r * N + c] - ref[i]) / refMax;
          err = Math.max(err, Number.isNaN(e) ? Infinity : e);
        });
        const bad = err > 1e-2 || unwritten > 0;
        if (bad) failures++;
        const gbps = bytes / ms / 1e6;
        if (!bad && gbps > (best.get(key)?.gbps ?? 0)) best.set(key, { label: p.label + (p.tiled ? ' [tiled w]' : ''), gbps });
        say(`${label}  ${ms.toFixed(4)} ms  ${gb(gbps)} GB/s  ${((100 * gbps) / copyGBps).toFixed(0).padStart(3)}% of copy  relErr ${err.toExponential(1)}  unwritten ${unwritten}${bad ? '  FAIL' : ''}`);
      } catch (e) {
        failures++;
        say(`${label}  FAIL (error) ${(e as Error).message.replace(/\s+/g, ' ').slice(0, 300)}`);
      }
    }
    // the same bytes moved by the copy kernel (half read from the weights, half written), one launch each
    if (!only || only.includes('copy')) {
      const half = Math.ceil(bytes / 2 / 16) * 16;
      const mk = (i: number) => {
        const src: Tensor = { buffer: ws[i % copies].buffer, offset: 0, shape: [half / 4], dtype: 'f32' };
        const dst: Tensor = { buffer: dsts[i % copies].buffer, offset: 0, shape: [half / 4], dtype: 'f32' };
        return [D('copy.wgsl', { x: src, out: dst }, { n4: half / 16 }, grid(4096))];
      };
      const ms = await timeIt(mk);
      const gbps = (2 * half) / ms / 1e6;
      say(`${'copy, same bytes'.padEnd(30)} m=${String(m).padEnd(3)} ${N}x${K}  ${ms.toFixed(4)} ms  ${gb(gbps)} GB/s  ${((100 * gbps) / copyGBps).toFixed(0).padStart(3)}% of copy`);
    }
    dev.free(a.buffer);
    dev.free(out.buffer);
    flush();
  }
  for (const t of [...ws, ...wts, ...dsts]) dev.free(t.buffer);
}

say('\n# fastest correct variant per case');
for (const [key, b] of best) say(`${key.padEnd(20)} ${b.label.padEnd(30)} ${gb(b.gbps)} GB/s  ${((100 * b.gbps) / copyGBps).toFixed(0)}% of copy`);
say(failures ? `\n${failures} FAIL line(s)` : '\nall checked outputs within 1e-2, none unwritten');
flush();
dev.destroy();
process.exit(failures ? 1 : 0);

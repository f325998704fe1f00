// Row-wise op lab: rms_norm with the residual add, rope (q and k) and silu_and_mul at LLaMA-2-7B
// shapes, each launch shape of src/device/webgpu/rowops.ts (the planner's choice "op", its
// variants, and the kernels before branch rowops, "v1") beside a plain copy of the same bytes.
//   npx tsx bench/lab-rowops.ts [--quick] [--smoke] [--out FILE] [--rows 256,2048] [--only rms,rope,silu] [--rounds N]
//
// Timing as bench/ops.ts: each case runs ~150 ms before it is timed, then the median of 5 trials
// of 20 back-to-back launches in one compute pass, by GPU timestamps (wall clock without them).
// Bytes are the least any kernel must move from memory: rms_norm reads x and the residual and
// writes the residual and out, plus the f16 weight once; rope reads and writes q and k, plus each
// token's cos/sin row and position (0.8%); silu_and_mul reads gate
// and up and writes out. "copy same bytes" (copy.wgsl) reads half of those bytes and writes the
// other half. Three modes:
//   hot        the same buffers every launch, as bench/ops.ts: at 256 rows the 12-34 MB an op
//              touches stay in the H100's 50 MB L2 between launches;
//   cold       inputs rotate over copies in one buffer (>= 128 MB in all, or 20): they come from
//              DRAM; outputs stay in one buffer, so Dawn still puts a barrier between launches;
//   nobarrier  as cold, but every launch writes its own buffers, each last touched by a 4-byte
//              copy before the pass: Dawn then puts only a copy -> compute barrier before a launch
//              (it always puts one before a write), not compute -> compute, so launches may overlap
//              where the driver's barrier is not coarser than Vulkan asks. cold - nobarrier bounds
//              what waiting for the previous dispatch to drain costs.
// Each (op, variant, rows, mode) line: the best ms over the rounds, and each round's (round 2 runs
// the cases in reverse order: the first cases after a shape's buffers are allocated have run slow
// on this Dawn, docs/perf-notes.md; the best of rounds is the figure), GB/s, % of the
// large copy measured at the start (the target's reference), % of the copy of the same bytes in
// the same mode, and the check of one launch on fresh inputs (outputs poisoned with NaN) against
// the CPU reference (src/device/cpu/reference.ts): max |error| / max |reference| and unwritten
// elements, FAIL past 1e-4. --smoke: tiny shapes, a check that the lab runs (e.g. on llvmpipe).
import { writeFileSync } from 'node:fs';
import { createDevice, empty, fromArray, type OpArgs, roundTrip, type Tensor, toArray, view } from '../src/device/index.ts';
import * as ref from '../src/device/cpu/reference.ts';
import type { WebGpuDevice } from '../src/device/webgpu/backend.ts';
import { type Dispatch, grid } from '../src/device/webgpu/plan.ts';
import { planRmsNorm, planRope, planSiluAndMul, type RmsNormShape, type RopeShape, type SiluShape } from '../src/device/webgpu/rowops.ts';
import { ropeCosSin } from '../src/model/rope.ts';
import { xorshift } from './lab-rand.ts';

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
};
const smoke = argv.includes('--smoke');
const quick = argv.includes('--quick') || smoke;
const rowsList = opt('rows')?.split(',').map(Number) ?? (smoke ? [1, 3] : quick ? [256, 2048] : [1, 16, 256, 1024, 2048]);
const only = opt('only')?.split(',');
const rounds = Number(opt('rounds') ?? (quick ? 1 : 2));
const WARM_MS = smoke ? 5 : quick ? 100 : 150;
const REPS = smoke ? 3 : 20;
const TRIALS = smoke ? 1 : quick ? 3 : 5;
// LLaMA-2-7B: hidden 4096, intermediate 11008, 32 heads of 128 (q and k rotated: 64)
const [H, I, HEADS, HEAD, MAXPOS] = smoke ? [256, 520, 4, 32, 64] : [4096, 11008, 32, 128, 4096];
const TOL = 1e-4;
// rows from which the cold and nobarrier modes and the summary are run (below, launch costs dominate)
const MODES_FROM = smoke ? 2 : 256;

const started = performance.now();
const dev = (await createDevice('webgpu')) as WebGpuDevice;
const out: string[] = [];
const say = (s = '') => {
  console.log(s);
  out.push(s);
};
const f = dev.info.features;
say(`# lab-rowops on ${dev.info.name} (${dev.info.description}); subgroups ${f.subgroups}, timestamps ${f.timestamps}${f.timestamps ? '' : ' (wall clock)'}`);
say(`# rows ${rowsList.join(', ')}; ${rounds} round(s); warm-up ${WARM_MS} ms a case; median of ${TRIALS} x ${REPS} launches; PARALLM_COMMIT=${process.env.PARALLM_COMMIT ?? '?'}`);

const next = xorshift(0x9e3779b9);
function rand(n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (next() / 4294967296) * (hi - lo);
  return a;
}

// every buffer of one rows value, freed together
let live: Tensor[] = [];
const alloc = (shape: number[], dtype: 'f32' | 'f16' | 'i32' = 'f32'): Tensor => {
  const t = empty(dev, shape, dtype);
  live.push(t);
  return t;
};
const put = (t: Tensor, data: Float32Array | Int32Array): Tensor => {
  dev.upload(t, data);
  return t;
};
/** k tensors of `shape`: views of one buffer (a barrier between launches that write them), or separate buffers */
function copies(shape: number[], k: number, separate = false, data?: Float32Array): Tensor[] {
  const numel = shape.reduce((a, b) => a * b, 1);
  if (separate) return Array.from({ length: k }, () => (data ? put(alloc(shape), data) : alloc(shape)));
  const stride = Math.ceil(numel / 64) * 64; // bindings start at multiples of 256 bytes
  const all = alloc([k * stride]);
  return Array.from({ length: k }, (_, i) => (data ? put(view(all, i * stride, shape), data) : view(all, i * stride, shape)));
}
/** copies of the inputs for the cold mode: enough that they do not stay in L2 between trials */
const coldCopies = (inputBytes: number) => Math.max(2, Math.min(REPS, Math.ceil((128 * 2 ** 20) / inputBytes)));

/** the launches of one trial; `touch`: tensors to write 4 bytes of before the pass (nobarrier) */
function runStream(mk: (i: number) => Dispatch[], reps: number, timing: boolean, touch: Tensor[] = []) {
  const s = dev.stream({ timing }) as ReturnType<WebGpuDevice['stream']> & { dispatch(d: Dispatch): unknown };
  for (const t of touch) s.write(view(t, 0, [1]), ZERO);
  for (let i = 0; i < reps; i++) for (const d of mk(i)) s.dispatch(d);
  return s.submit();
}
const ZERO = new Float32Array(1);
async function time(mk: (i: number) => Dispatch[], warmMs: number, touch: Tensor[] = []): Promise<number> {
  const t0 = performance.now();
  do await runStream(mk, REPS, false, touch).done();
  while (performance.now() - t0 < warmMs);
  const ts: number[] = [];
  for (let t = 0; t < TRIALS; t++) ts.push((await runStream(mk, REPS, true, touch).elapsedMs()) / REPS);
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)];
}

interface Check {
  err: number;
  unwritten: number;
}
/** max |got - want| / max |want| (Infinity on a NaN), and NaNs (unwritten elements) */
function compare(got: ArrayLike<number>, want: ArrayLike<number>, into: Check = { err: 0, unwritten: 0 }): Check {
  let maxRef = 0;
  let maxErr = 0;
  for (let i = 0; i < want.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(want[i]));
    if (Number.isNaN(got[i])) into.unwritten++;
    else maxErr = Math.max(maxErr, Math.abs(got[i] - want[i]));
  }
  into.err = Math.max(into.err, into.unwritten ? Infinity : maxErr / Math.max(maxRef, 1e-30));
  return into;
}
const NAN = (n: number) => new Float32Array(n).fill(NaN);

type Mode = 'hot' | 'cold' | 'nobarrier';
interface Case {
  op: string;
  variant: string;
  mode: Mode;
  bytes: number;
  mk: (i: number) => Dispatch[];
  /** nobarrier: the launches' own output buffers */
  touch?: Tensor[];
  check?: () => Promise<Check>;
  ablation?: boolean;
  ms: number[];
  result?: Check;
}

// ceiling: a large copy, after the GPU has warmed up (clocks ramp under load)
let copyGBps: number;
{
  const n = Math.floor(Math.min(dev.info.maxBindingBytes, (smoke ? 8 : 512) * 2 ** 20) / 4 / 1024) * 1024;
  const x = put(alloc([n]), rand(n));
  const y = alloc([n]);
  const mk = () => [copyDispatch(x, y)];
  const t0 = performance.now();
  while (performance.now() - t0 < (smoke ? 20 : quick ? 300 : 1500)) await runStream(mk, 20, false).done();
  const ms = await time(mk, WARM_MS);
  copyGBps = (8 * n) / (ms * 1e6);
  say(`# copy ${((8 * n) / 2 ** 20).toFixed(0)} MiB (read + write): ${ms.toFixed(4)} ms, ${copyGBps.toFixed(0)} GB/s: the "% copy" reference`);
  for (const t of live) dev.free(t.buffer);
  live = [];
}

// copy.wgsl as the op plans it (grid-stride, at most 4096 workgroups)
function copyDispatch(x: Tensor, y: Tensor): Dispatch {
  const n4 = x.shape[0] / 4;
  return { file: 'copy.wgsl', flags: [], overrides: {}, tensors: { x, out: y }, params: { n4 }, grid: grid(Math.min(Math.ceil(n4 / 256), 4096)) };
}

/** a copy of `bytes` (read + written) in the three modes */
function copyCases(op: string, bytes: number): Case[] {
  const n = Math.max(4, Math.round(bytes / 8 / 4) * 4);
  const k = coldCopies(n * 4);
  const src = copies([n], k, false, rand(n));
  const dst = alloc([n]);
  const dsts = copies([n], REPS, true);
  const c = (mode: Mode, mk: (i: number) => Dispatch[]): Case => ({ op, variant: 'copy same bytes', mode, bytes: 8 * n, mk, ms: [] });
  return [c('hot', () => [copyDispatch(src[0], dst)]), c('cold', (i) => [copyDispatch(src[i % k], dst)]), { ...c('nobarrier', (i) => [copyDispatch(src[i % k], dsts[i])]), touch: dsts }];
}

const subgroups = dev.info.features.subgroups;
const RMS: [string, RmsNormShape, boolean?][] = [
  ['v1 (before rowops)', { kernels: 'old' }, true],
  ['op', {}, true],
  ['wgmem 256x4', { wg: 256, vpt: 4, subgroups: false }],
  ...(subgroups
    ? ([
        ['sg 128x8', { wg: 128, vpt: 8, subgroups: true }],
        ['sg 512x2', { wg: 512, vpt: 2, subgroups: true }],
        ['sg 1024x1', { wg: 1024, vpt: 1, subgroups: true }],
      ] as [string, RmsNormShape][])
    : []),
  ['512 wgs striding', { maxWorkgroups: 512 }],
  ['512 wgs striding, pipelined', { maxWorkgroups: 512, pipeline: true }],
  ['1024 wgs striding, pipelined', { maxWorkgroups: 1024, pipeline: true }],
];
const ROPE: [string, RopeShape, boolean?][] = [
  ['v1 (before rowops)', { kernels: 'old' }, true],
  ['op', {}, true],
  ['ipt 1', { ipt: 1 }],
  ['ipt 2', { ipt: 2 }],
  ['wg 128', { wg: 128 }],
];
const SILU: [string, SiluShape, boolean?][] = [
  ['v1 (before rowops)', { kernels: 'old' }, true],
  ['op', {}, true],
  ['u1', { u: 1 }],
  ['u4', { u: 4 }],
  ['u8', { u: 8 }],
  ['u4, a workgroup per row', { u: 4, maxColumnGroups: 1 }],
  ['u2, at most 1024 wgs', { u: 2, maxRowGroups: Math.max(1, Math.floor(1024 / Math.ceil(I / 4 / 512))) }],
  ['op without exp (ablation)', { noExp: true }],
];

/** the launch of the production kernels (and of v1) at this size */
function describe(op: string, n: number, variant: string, plan: Dispatch[]) {
  if (variant !== 'op' && !variant.startsWith('v1')) return;
  for (const d of plan) say(`# ${op} ${n} rows, ${variant}: ${d.file} ${d.flags.join(' ')} ${JSON.stringify(d.overrides)} grid [${d.grid.join(', ')}]`);
}

/** the op's shapes at n rows: buffers, host data and reference, and its cases */
async function opCases(n: number): Promise<Case[]> {
  const cases: Case[] = [];
  const want = (op: string) => !only || only.some((o) => op.startsWith(o));
  const modes = (nb: boolean | undefined): Mode[] => (n < MODES_FROM ? ['hot'] : nb ? ['hot', 'cold', 'nobarrier'] : ['hot', 'cold']);
  if (want('rms_norm')) {
    const op = 'rms_norm+res';
    const bytes = 16 * n * H + 2 * H;
    const xh = rand(n * H);
    const rh = rand(n * H);
    const wh = rand(H, 0.5, 1.5);
    const weight = fromArray(dev, wh, [H], 'f16');
    live.push(weight);
    const k = coldCopies(8 * n * H);
    const xs = copies([n, H], k, false, xh);
    const rs = copies([n, H], k, false, rh);
    const o = alloc([n, H]);
    const rsNb = copies([n, H], REPS, true);
    const osNb = copies([n, H], REPS, true);
    const [wantOut, wantRes] = ref.rmsNorm(xh, roundTrip(wh, 'f16'), n, H, 1e-5, rh);
    const args = (x: Tensor, residual: Tensor, out: Tensor): OpArgs['rms_norm'] => ({ x, weight, out, residual, eps: 1e-5 });
    for (const [variant, shape, nb] of RMS) {
      if (shape.maxWorkgroups && shape.maxWorkgroups >= n) continue; // the same launch as "op"
      const plan = (a: OpArgs['rms_norm']) => planRmsNorm(dev, a, shape);
      describe(op, n, variant, plan(args(xs[0], rs[0], o)));
      const check = async () => {
        dev.upload(xs[0], xh);
        dev.upload(rs[0], rh);
        dev.upload(o, NAN(n * H));
        await runStream(() => plan(args(xs[0], rs[0], o)), 1, false).done();
        const c = compare(await toArray(dev, o), wantOut);
        return compare(await toArray(dev, rs[0]), wantRes!, c);
      };
      for (const mode of modes(nb)) {
        const mk = mode === 'hot' ? () => plan(args(xs[0], rs[0], o)) : mode === 'cold' ? (i: number) => plan(args(xs[i % k], rs[i % k], o)) : (i: number) => plan(args(xs[i % k], rsNb[i], osNb[i]));
        cases.push({ op, variant, mode, bytes, mk, touch: mode === 'nobarrier' ? [...rsNb, ...osNb] : undefined, check: mode === 'hot' ? check : undefined, ms: [] });
      }
    }
    cases.push(...copyCases(op, bytes).filter((c) => modes(true).includes(c.mode)));
  }
  if (want('rope')) {
    const op = 'rope (q and k)';
    const width = 3 * HEADS * HEAD; // a fused qkv row; v is not rotated
    const heads = 2 * HEADS;
    const bytes = 2 * n * heads * HEAD * 4 + n * (HEAD * 4 + 4);
    const xh = rand(n * width);
    const positions = put(alloc([n], 'i32'), Int32Array.from({ length: n }, (_, i) => i % MAXPOS));
    const posCheckH = Int32Array.from({ length: n }, (_, i) => 1 + ((i * 7919) % (MAXPOS - 1))); // never 0: no identity rotation
    const posCheck = put(alloc([n], 'i32'), posCheckH);
    const table = ropeCosSin(Float32Array.from({ length: HEAD / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / HEAD)), MAXPOS);
    const cosSin = put(alloc([MAXPOS, HEAD]), table);
    const k = coldCopies(n * width * 4);
    const xs = copies([n, width], k, false, xh);
    const xsNb = copies([n, width], REPS, true);
    const wantX = ref.rope(xh, posCheckH, table, HEAD, n, width, heads, HEAD);
    const args = (x: Tensor, pos = positions): OpArgs['rope'] => ({ x, positions: pos, cosSin, numHeads: heads, headSize: HEAD });
    for (const [variant, shape, nb] of ROPE) {
      const plan = (a: OpArgs['rope']) => planRope(dev, a, shape);
      describe(op, n, variant, plan(args(xs[0])));
      const check = async () => {
        dev.upload(xs[0], xh);
        await runStream(() => plan(args(xs[0], posCheck)), 1, false).done();
        const got = await toArray(dev, xs[0]);
        const c = compare(got, wantX);
        // in place, so nothing to poison: count rotated elements left as they were
        for (let i = 0; i < got.length; i++) if (got[i] === xh[i] && wantX[i] !== xh[i]) c.unwritten++;
        if (c.unwritten) c.err = Infinity;
        return c;
      };
      for (const mode of modes(nb)) {
        const mk = mode === 'hot' ? () => plan(args(xs[0])) : mode === 'cold' ? (i: number) => plan(args(xs[i % k])) : (i: number) => plan(args(xsNb[i]));
        cases.push({ op, variant, mode, bytes, mk, touch: mode === 'nobarrier' ? xsNb : undefined, check: mode === 'hot' ? check : undefined, ms: [] });
      }
    }
    cases.push(...copyCases(op, bytes).filter((c) => modes(true).includes(c.mode)));
  }
  if (want('silu')) {
    const op = 'silu_and_mul';
    const bytes = 12 * n * I;
    const xh = rand(n * 2 * I, -4, 4);
    const k = coldCopies(8 * n * I);
    const xs = copies([n, 2 * I], k, false, xh);
    const o = alloc([n, I]);
    const osNb = copies([n, I], REPS, true);
    const wantOut = ref.siluAndMul(xh, n, I);
    for (const [variant, shape, nb] of SILU) {
      const plan = (x: Tensor, out: Tensor) => planSiluAndMul(dev, { x, out }, shape);
      describe(op, n, variant, plan(xs[0], o));
      const check = async () => {
        dev.upload(o, NAN(n * I));
        await runStream(() => plan(xs[0], o), 1, false).done();
        return compare(await toArray(dev, o), wantOut);
      };
      for (const mode of modes(nb)) {
        const mk = mode === 'hot' ? () => plan(xs[0], o) : mode === 'cold' ? (i: number) => plan(xs[i % k], o) : (i: number) => plan(xs[i % k], osNb[i]);
        cases.push({ op, variant, mode, bytes, mk, touch: mode === 'nobarrier' ? osNb : undefined, check: mode === 'hot' ? check : undefined, ablation: !!shape.noExp, ms: [] });
      }
    }
    cases.push(...copyCases(op, bytes).filter((c) => modes(true).includes(c.mode)));
  }
  return cases;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const summary: string[] = [];
let failures = 0;
say(`\n${'op'.padEnd(15)} ${'variant'.padEnd(30)} ${'rows'.padStart(5)} ${'mode'.padEnd(9)} ${'ms'.padStart(8)} ${(rounds > 1 ? 'rounds' : '').padStart(9)} ${'GB/s'.padStart(6)} ${'%copy'.padStart(6)} ${'%same'.padStart(6)}  check`);
for (const n of rowsList) {
  const cases = await opCases(n);
  // the small sizes (launch-bound, for information) once
  const roundsHere = n < MODES_FROM ? 1 : rounds;
  for (let r = 0; r < roundsHere; r++) {
    for (const c of r % 2 ? [...cases].reverse() : cases) {
      try {
        // round 1 warms each case for WARM_MS; later rounds follow a GPU that is busy already
        c.ms.push(await time(c.mk, r === 0 ? WARM_MS : WARM_MS / 2, c.touch));
        if (r === 0 && c.check) c.result = await c.check();
      } catch (e) {
        c.ms.push(NaN);
        c.result = { err: NaN, unwritten: 0 };
        say(`${c.op} ${c.variant} rows ${n} ${c.mode}: FAIL (error) ${(e as Error).message.replace(/\s+/g, ' ').slice(0, 300)}`);
      }
    }
  }
  const best = (c: Case) => (c.ms.some(Number.isNaN) ? NaN : Math.min(...c.ms));
  const copyMs = (op: string, mode: Mode) => {
    const c = cases.find((c) => c.op === op && c.mode === mode && c.variant === 'copy same bytes');
    return c && best(c);
  };
  for (const c of cases) {
    const ms = best(c);
    const gbps = c.bytes / (ms * 1e6);
    const same = copyMs(c.op, c.mode);
    const bad = !c.ablation && !!c.result && !(c.result.err <= TOL && c.result.unwritten === 0);
    if (bad || Number.isNaN(ms)) failures++;
    const check = !c.result ? '' : `${c.ablation ? '(ablation: wrong by design) ' : ''}err ${c.result.err.toExponential(1)}${c.result.unwritten ? ` unwritten ${c.result.unwritten}` : ''}${bad ? '  FAIL' : ''}`;
    say(`${c.op.padEnd(15)} ${c.variant.padEnd(30)} ${String(n).padStart(5)} ${c.mode.padEnd(9)} ${ms.toFixed(4).padStart(8)} ${(c.ms.length > 1 ? c.ms.map((m) => m.toFixed(4)).join(' ') : '').padStart(9)} ${gbps.toFixed(gbps < 100 ? 1 : 0).padStart(6)} ${pct(gbps / copyGBps).padStart(6)} ${(same ? pct(same / ms) : '').padStart(6)}  ${check}`);
  }
  // one summary line per (op, mode): v1, op, the fastest variant, the copy of the same bytes
  if (n >= MODES_FROM) {
    for (const op of [...new Set(cases.map((c) => c.op))]) {
      for (const mode of ['hot', 'cold', 'nobarrier'] as Mode[]) {
        const of = (c?: Case) => (c ? `${pct(c.bytes / (best(c) * 1e6) / copyGBps)}` : '-');
        const mine = cases.filter((c) => c.op === op && c.mode === mode && !c.ablation && c.variant !== 'copy same bytes');
        if (!mine.length) continue;
        const fastest = mine.reduce((a, b) => (best(b) < best(a) ? b : a));
        const get = (v: string) => cases.find((c) => c.op === op && c.mode === mode && c.variant === v);
        summary.push(`${op.padEnd(15)} ${String(n).padStart(5)} ${mode.padEnd(9)} v1 ${of(get('v1 (before rowops)')).padStart(6)}  op ${of(get('op')).padStart(6)}  best ${of(fastest).padStart(6)} (${fastest.variant})  copy same bytes ${of(get('copy same bytes')).padStart(6)}`);
      }
    }
  }
  for (const t of live) dev.free(t.buffer);
  live = [];
}
say(`\n# summary: % of the ${copyGBps.toFixed(0)} GB/s copy (target: >= 70% at 256+ rows, mode hot as bench/ops.ts)`);
for (const s of summary) say(s);
say(failures ? `\n${failures} FAIL line(s)` : `\nall checks within ${TOL}`);
say(`# ${((performance.now() - started) / 1000).toFixed(0)} s`);
if (opt('out')) writeFileSync(opt('out')!, out.join('\n') + '\n');
dev.destroy();
process.exit(failures ? 1 : 0);

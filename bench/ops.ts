// The op benchmark (npm run bench:ops / parallm bench ops): every op at LLaMA-2-7B shapes,
// timed on the device (timestamp queries where present), as GB/s or TFLOP/s and as a fraction
// of this device's own ceilings measured by the same tool: a large copy kernel and a large
// f16-weight matmul. Writes bench/results/ops-<gpu>-<date>.json and prints a markdown table.

import { execSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Device, type KvPool, type OpArgs, type Tensor, type OpName, createDevice, empty, fromArray, partLayout, poolParts } from '../src/device/index.ts';
import { pickMatmul } from '../src/device/webgpu/ops.ts';
import { pickMatmul as pickNativeMatmul } from '../src/device/native/ops.ts';
import { KvCache } from '../src/model/kv-cache.ts';
import { ropeCosSin } from '../src/model/rope.ts';
import type { WebGpuDevice } from '../src/device/webgpu/backend.ts';
import { resultSlug } from './slug.ts';

export interface Row {
  op: string;
  shape: string;
  kernel?: string;
  ms: number;
  gbps?: number;
  tflops?: number;
  /** achieved / ceiling (copy bandwidth for memory-bound ops, matmul rate for compute-bound) */
  fraction?: number;
  /** achieved / PyTorch's rate at the same shape, measured in the same call */
  ofPeer?: number;
  bound: 'memory' | 'compute' | 'latency';
}

export interface BenchOptions {
  backend: string;
  out: string;
  quick?: boolean;
  /** JSON of ceilings measured by PyTorch on the same GPU (scripts/torch_ceilings.py) */
  peer?: string;
  /**
   * Sections to run after the ceilings, comma-separated (default all): rowops (rms_norm, rope,
   * the KV-cache writes, silu_and_mul, embedding), decode (1-16-row matmuls), batch (64-4,096-row
   * matmuls), logits (softmax, argmax, sample), attention
   */
  only?: string;
}

const SECTIONS = ['rowops', 'decode', 'batch', 'logits', 'attention'];
const H = 4096;
const I = 11008;
const V = 32000;
const HEADS = 32;
const HEAD = 128;

function rand(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  let s = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * scale;
  }
  return a;
}

/**
 * Median over `trials` of the per-op time of `reps` back-to-back launches in one stream;
 * `make(i)` gives the i-th launch's args, so that inputs can rotate past the L2 cache.
 */
async function time<K extends OpName>(dev: Device, name: K, make: (i: number) => OpArgs[K], reps: number, trials: number): Promise<number> {
  const run = async (n: number, timing: boolean): Promise<number> => {
    const s = dev.stream({ timing });
    for (let i = 0; i < n; i++) s.op(name, make(i));
    const c = s.submit();
    if (!timing) {
      await c.done();
      return 0;
    }
    return (await c.elapsedMs()) / n;
  };
  // each timed trial long enough (~6 ms, as the labs time) that the GPU runs it at its steady
  // pace: 20 launches of a ~10 us op are a 0.2 ms trial that starts from the idle gap before it,
  // and read 2-3x slower than the same kernel in the labs (perf-notes, "The op benchmark's small
  // WebGPU launches"). --quick's single trial (a smoke test) is left short.
  if (trials > 1) {
    const est = await run(reps, true);
    reps = Math.max(reps, Math.min(MAX_REPS, Math.ceil(TRIAL_MS / Math.max(est, 1e-4))));
  }
  // Warm-up and trials with the GPU never idle between them: streams are submitted ahead of the
  // host's waits, up to IN_FLIGHT at a time. The GPU's SM clock follows its load: sampled every
  // 100 ms on the H100 (session 7, nvidia-smi), it sat at 345-1,400 MHz (of 1,980) through
  // launches of small ops that were awaited one stream at a time, and such runs read rms_norm at
  // 2,048 rows at 91-101 us against 49 us in bench/lab-rowops.ts, decode matmuls at 33-70 us
  // against 15-34 us. Under a serving load the GPU is busy and at full clock, so that is the
  // pace this benchmark reports. The warm-up lasts at least WARM_MIN_MS, and until the best of
  // the last WARM_WINDOW streams is no better than 2% under the best before them, at most
  // WARM_MAX_MS. (--quick, a smoke test: one trial, 150 ms of warm-up awaited stream by stream.)
  const t0 = performance.now();
  if (trials > 1) {
    const seen: number[] = [];
    const inflight: Promise<number>[] = [];
    for (;;) {
      while (inflight.length < IN_FLIGHT) inflight.push(run(reps, true));
      seen.push(await inflight.shift()!);
      const spent = performance.now() - t0;
      if (spent >= WARM_MAX_MS) break;
      if (spent < WARM_MIN_MS || seen.length <= WARM_WINDOW) continue;
      const before = Math.min(...seen.slice(0, -WARM_WINDOW));
      if (Math.min(...seen.slice(-WARM_WINDOW)) >= 0.98 * before) break;
    }
    warmups.push({ op: name, ms: performance.now() - t0, trials: seen.length, firstUs: seen[0] * 1000, bestUs: Math.min(...seen) * 1000 });
    // the trials queue behind the warm-up streams still in flight
    const medians: number[] = [];
    for (let r = 0; r < REPEAT; r++) {
      const pending: Promise<number>[] = [];
      for (let t = 0; t < trials; t++) pending.push(run(reps, true));
      const times = (await Promise.all(pending)).sort((a, b) => a - b);
      medians.push(times[Math.floor(times.length / 2)]);
    }
    await Promise.all(inflight);
    if (REPEAT > 1) console.error(`repeat ${name}: ${medians.map((m) => (m * 1000).toFixed(1)).join(' ')} us`);
    return medians[0];
  }
  do await run(reps, false);
  while (performance.now() - t0 < 150);
  return run(reps, true);
}
/** Warm-up: its shortest and longest run (ms), the streams without a 2% gain that end it, the streams kept in flight. */
const WARM_MIN_MS = 300;
const WARM_MAX_MS = 3000;
const WARM_WINDOW = 4;
const IN_FLIGHT = 3;
/** Each op's warm-up: how long, and its first and best trial (per launch), for the result's record. */
const warmups: { op: string; ms: number; trials: number; firstUs: number; bestUs: number }[] = [];
/** PARALLM_BENCH_REPEAT=N times each op's trials N times in a row (stderr; not --quick): an experiment on the timing itself. */
const REPEAT = Number(process.env.PARALLM_BENCH_REPEAT ?? 1);
/** A timed trial's length (ms), and the most launches one may take to reach it. */
const TRIAL_MS = 6;
const MAX_REPS = 1000;

/**
 * An f16 matmul weight as the model holds it, in the layout the device packs it into
 * (Device.packWeight), and the buffers to free after its cases. The row-major original is freed
 * with it, not before: on an H200 the first case timed after freeing ~270 MB of buffers ran at
 * 40% of its speed for ~0.5 s (0.064 against 0.026 ms, bfea2bb), past the warm-up.
 */
export function weight(dev: Device, values: ArrayLike<number>, n: number, k: number): [Tensor, Tensor[]] {
  const t = fromArray(dev, values, [n, k], 'f16');
  const p = dev.packWeight?.(t) ?? t;
  return [p, p === t ? [t] : [p, t]];
}

/** The matmul kernel a backend picks for these arguments (for the tables), with ' (tiled w)' for a packed weight. */
function matmulKernel(dev: Device, args: OpArgs['matmul']): string {
  if (dev.info.backend === 'webgpu') return pickMatmul(dev as WebGpuDevice, args) + (args.w.layout ? ` (${args.w.layout} w)` : '');
  if (dev.info.backend === 'native') {
    const k = pickNativeMatmul(dev.info.features.subgroupMatrix, args);
    return k === 'sgmat' ? 'blas' : k;
  }
  return dev.info.backend;
}

export interface BenchResult {
  gpu: string;
  device: Device['info'];
  date: string;
  commit: string;
  timing: string;
  ceilings: { copyGBps: number; matmulTflops: number; matmulShape: string; matmulKernel: string };
  rows: Row[];
}

export async function runOpsBench(opts: BenchOptions): Promise<BenchResult> {
  const dev = await createDevice(opts.backend);
  warmups.length = 0;
  const quick = !!opts.quick;
  const reps = quick ? 3 : 20;
  const trials = quick ? 1 : 5;
  const rows: Row[] = [];
  const peer = opts.peer && existsSync(opts.peer) ? JSON.parse(readFileSync(opts.peer, 'utf8')) : undefined;
  const f = (x: number) => Math.round(x * 1000) / 1000;
  const maxBind = Math.min(dev.info.maxBindingBytes, 512 * 2 ** 20);

  // ceiling 1: a large copy kernel (bytes read + bytes written)
  const copyN = Math.floor((quick ? 32 * 2 ** 20 : maxBind) / 4 / 1024) * 1024;
  const cx = fromArray(dev, rand(copyN), [copyN], 'f32');
  const cy = empty(dev, [copyN], 'f32');
  // clocks ramp up under load: a cold first measurement read 1.6 TB/s on an H200 that copies at 3.9
  const t0 = performance.now();
  while (performance.now() - t0 < (quick ? 100 : 1500)) {
    const s = dev.stream();
    for (let i = 0; i < 20; i++) s.op('copy', { x: cx, out: cy });
    await s.submit().done();
  }
  const copyMs = await time(dev, 'copy', () => ({ x: cx, out: cy }), reps, trials);
  const copyGBps = (2 * copyN * 4) / (copyMs * 1e6);
  dev.free(cx.buffer);
  dev.free(cy.buffer);

  // ceiling 2: a large matmul with f16 weights on the fastest kernel this device has
  const mm = quick ? 512 : 4096;
  const ma = fromArray(dev, rand(mm * mm), [mm, mm], 'f32');
  const [mw, mwAll] = weight(dev, rand(mm * mm, 0.02), mm, mm);
  const mo = empty(dev, [mm, mm], 'f32');
  const mmArgs = { a: ma, w: mw, out: mo };
  const mmKernel = matmulKernel(dev, mmArgs);
  const mmMs = await time(dev, 'matmul', () => mmArgs, quick ? 1 : 5, trials);
  const mmTflops = (2 * mm ** 3) / (mmMs * 1e9);
  for (const t of [ma, mo, ...mwAll]) dev.free(t.buffer);

  const mem = (op: string, shape: string, ms: number, bytes: number, kernel?: string): Row => ({
    op,
    shape,
    kernel,
    ms: f(ms),
    gbps: f(bytes / (ms * 1e6)),
    fraction: f(bytes / (ms * 1e6) / copyGBps),
    bound: 'memory',
  });

  const sections = opts.only ? opts.only.split(',') : undefined;
  const bad = sections?.filter((x) => !SECTIONS.includes(x));
  if (bad?.length) throw new Error(`bench ops --only ${opts.only}: expected some of ${SECTIONS.join(', ')}`);
  const want = (section: string) => !sections || sections.includes(section);
  const tokenCounts = !want('rowops') ? [] : quick ? [1, 256] : [1, 16, 256, 2048];
  for (const n of tokenCounts) {
    const x = fromArray(dev, rand(n * H), [n, H], 'f32');
    const res = fromArray(dev, rand(n * H), [n, H], 'f32');
    const w = fromArray(dev, rand(H), [H], 'f16');
    const out = empty(dev, [n, H], 'f32');
    const ms = await time(dev, 'rms_norm', () => ({ x, weight: w, out, residual: res, eps: 1e-5 }), reps, trials);
    rows.push(mem('rms_norm+residual', `[${n}, ${H}]`, ms, n * H * 4 * 4 + H * 2));

    const qk = fromArray(dev, rand(n * 3 * H), [n, 3 * H], 'f32');
    const pos = fromArray(dev, Array.from({ length: n }, (_, i) => i), [n], 'i32');
    const inv = fromArray(dev, ropeCosSin(Float32Array.from({ length: HEAD / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / HEAD)), 4096), [4096, HEAD], 'f32');
    const rms = await time(dev, 'rope', () => ({ x: qk, positions: pos, cosSin: inv, numHeads: 2 * HEADS, headSize: HEAD }), reps, trials);
    // q and k read and written, and each token's position and row of the cos/sin table read once
    rows.push(mem('rope (q and k)', `[${n}, ${2 * HEADS}, ${HEAD}]`, rms, n * 2 * H * 4 * 2 + n * (HEAD * 4 + 4)));

    // K and V into an f16 cache of blocks of 16, alone (reshape_and_cache) and fused with rope
    // over a q/k/v row (qkv_rope_cache): a decode batch writes each token into its own block,
    // a prefill chunk (2048) consecutive slots. Bytes: f32 rows read, q written, f16 K and V written.
    const bs = 16;
    const stride = n <= 256 ? bs : 1;
    const cacheShape = [Math.ceil((n * stride) / bs), bs, HEADS, HEAD];
    const kc = empty(dev, cacheShape, 'f16');
    const vc = empty(dev, cacheShape, 'f16');
    const slots = fromArray(dev, Array.from({ length: n }, (_, i) => i * stride), [n], 'i32');
    const [k, v, q] = [fromArray(dev, rand(n * H), [n, H], 'f32'), fromArray(dev, rand(n * H), [n, H], 'f32'), empty(dev, [n, H], 'f32')];
    const cms = await time(dev, 'reshape_and_cache', () => ({ key: k, value: v, keyCache: kc, valueCache: vc, slotMapping: slots }), reps, trials);
    rows.push(mem('reshape_and_cache', `[${n}, ${HEADS}, ${HEAD}] x 2 into f16`, cms, n * 2 * H * (4 + 2)));
    const fms = await time(dev, 'qkv_rope_cache', () => ({ qkv: qk, positions: pos, cosSin: inv, numHeads: HEADS, numKvHeads: HEADS, headSize: HEAD, q, keyCache: kc, valueCache: vc, slotMapping: slots }), reps, trials);
    rows.push(mem('qkv_rope_cache', `[${n}, 3 x ${HEADS}, ${HEAD}], f16 cache`, fms, n * H * (3 * 4 + 4 + 2 * 2)));

    const gu = fromArray(dev, rand(n * 2 * I), [n, 2 * I], 'f32');
    const act = empty(dev, [n, I], 'f32');
    const sms = await time(dev, 'silu_and_mul', () => ({ x: gu, out: act }), reps, trials);
    rows.push(mem('silu_and_mul', `[${n}, ${2 * I}]`, sms, n * I * 4 * 3));

    const ids = fromArray(dev, Array.from({ length: n }, (_, i) => (i * 7919) % V), [n], 'i32');
    const table = fromArray(dev, rand(V * H, 0.02), [V, H], 'f16');
    const ems = await time(dev, 'embedding', () => ({ ids, table, out }), reps, trials);
    rows.push(mem('embedding', `[${n}] of [${V}, ${H}] f16`, ems, n * H * 6));
    for (const t of [x, res, w, out, qk, pos, inv, kc, vc, slots, k, v, q, gu, act, ids, table]) dev.free(t.buffer);
  }

  // matmul: decode (gemv, memory-bound) and prefill (compute-bound) at the 7B projections
  const shapes: [number, number][] = [
    [H, H],
    [I, H],
    [H, I],
  ];
  for (const [n, k] of want('decode') || want('batch') ? shapes : []) {
    const wBytes = n * k * 2;
    // rotate through enough copies of w that they do not all fit in cache (~256 MiB in all)
    const copies = quick ? 1 : Math.max(2, Math.ceil((256 * 2 ** 20) / wBytes));
    const made = Array.from({ length: copies }, () => weight(dev, rand(n * k, 0.02), n, k));
    const ws = made.map(([w]) => w);
    for (const m of !want('decode') ? [] : quick ? [1, 16] : [1, 2, 4, 8, 16]) {
      const a = fromArray(dev, rand(m * k), [m, k], 'f32');
      const out = empty(dev, [m, n], 'f32');
      const ms = await time(dev, 'matmul', (i) => ({ a, w: ws[i % copies], out }), reps, trials);
      const kernel = matmulKernel(dev, { a, w: ws[0], out });
      rows.push(mem('matmul decode', `[${m}, ${k}] x [${n}, ${k}]^T f16`, ms, wBytes + m * k * 4 + m * n * 4, kernel));
      dev.free(a.buffer);
      dev.free(out.buffer);
    }
    // decode batches of a continuous-batching step (64, 256 rows) and a prefill chunk (2048)
    for (const m of !want('batch') ? [] : quick ? [256] : [64, 256, 2048, 4096]) {
      const a = fromArray(dev, rand(m * k), [m, k], 'f32');
      const out = empty(dev, [m, n], 'f32');
      const args = { a, w: ws[0], out };
      const kernel = matmulKernel(dev, args);
      const ms = await time(dev, 'matmul', (i) => ({ a, w: ws[i % copies], out }), quick ? 1 : 5, trials);
      const tflops = (2 * m * n * k) / (ms * 1e9);
      // beside our own ceiling, the fraction of what PyTorch reaches at this very shape (same run)
      const peerTflops = peer?.[`matmul_float16_${m}x${n}x${k}_tflops`] as number | undefined;
      rows.push({ op: m < 1024 ? 'matmul batch' : 'matmul prefill', shape: `[${m}, ${k}] x [${n}, ${k}]^T f16`, kernel, ms: f(ms), tflops: f(tflops), fraction: f(tflops / mmTflops), ofPeer: peerTflops ? f(tflops / peerTflops) : undefined, bound: 'compute' });
      dev.free(a.buffer);
      dev.free(out.buffer);
    }
    for (const t of made.flatMap(([, all]) => all)) dev.free(t.buffer);
  }

  // logits-side ops: one pass over [n, V] would be the floor; sampling makes ~67 passes by design
  for (const n of !want('logits') ? [] : quick ? [1, 64] : [1, 64, 256]) {
    const logits = fromArray(dev, rand(n * V, 5), [n, V], 'f32');
    const probs = empty(dev, [n, V], 'f32');
    const ids = empty(dev, [n], 'i32');
    const sm = await time(dev, 'softmax', () => ({ x: logits, out: probs }), reps, trials);
    rows.push(mem('softmax', `[${n}, ${V}]`, sm, n * V * 8));
    const am = await time(dev, 'argmax', () => ({ x: logits, out: ids }), reps, trials);
    rows.push(mem('argmax', `[${n}, ${V}]`, am, n * V * 4));
    const temp = fromArray(dev, new Array(n).fill(0.8), [n], 'f32');
    const topK = fromArray(dev, new Array(n).fill(50), [n], 'i32');
    const topP = fromArray(dev, new Array(n).fill(0.95), [n], 'f32');
    const draws = fromArray(dev, Array.from({ length: n }, (_, i) => (i * 0.618) % 1), [n], 'f32');
    const minP = fromArray(dev, new Array(n).fill(0), [n], 'f32');
    const sam = await time(dev, 'sample', () => ({ logits, temperature: temp, topK, topP, minP, draws, out: ids }), reps, trials);
    rows.push({ op: 'sample (T, top-k 50, top-p 0.95)', shape: `[${n}, ${V}]`, ms: f(sam), bound: 'latency' });
    for (const t of [logits, probs, ids, temp, topK, topP, minP, draws]) dev.free(t.buffer);
  }

  if (want('attention')) rows.push(...(await attentionRows(dev, quick, reps, trials, copyGBps, mmTflops)));

  const gpu = dev.info.name;
  const date = new Date().toISOString().slice(0, 10);
  // the GPU machine's copy of the tree has no .git: the caller passes PARALLM_COMMIT there
  let commit = process.env.PARALLM_COMMIT ?? 'unknown';
  try {
    commit = process.env.PARALLM_COMMIT ?? execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {}
  const result = {
    gpu,
    device: dev.info,
    date,
    commit,
    timing: dev.info.features.timestamps ? 'gpu timestamps' : 'wall clock (no timestamp-query)',
    ceilings: { copyGBps: f(copyGBps), matmulTflops: f(mmTflops), matmulShape: `${mm}^3 f16 weights`, matmulKernel: mmKernel },
    peer,
    rows,
    // each timed op's warm-up in order (ms spent, trials, first and best trial's us per launch)
    warmups: warmups.map((w) => ({ ...w, ms: f(w.ms), firstUs: f(w.firstUs), bestUs: f(w.bestUs) })),
  };
  mkdirSync(opts.out, { recursive: true });
  const file = join(opts.out, `ops-${resultSlug(gpu)}-${date}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');

  console.log(`\n${gpu} (${dev.info.description}), ${result.timing}, commit ${commit}`);
  console.log(`ceilings: copy ${f(copyGBps)} GB/s; matmul ${f(mmTflops)} TFLOP/s (${mm}^3, ${mmKernel})`);
  if (peer) console.log(`peer (PyTorch): ${JSON.stringify(peer)}`);
  const pct = (x?: number) => (x !== undefined ? `${Math.round(x * 1000) / 10}%` : '');
  console.log('\n| op | shape | kernel | ms | GB/s | TFLOP/s | of own ceiling | of PyTorch |\n|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.op} | ${r.shape} | ${r.kernel ?? ''} | ${r.ms} | ${r.gbps ?? ''} | ${r.tflops ?? ''} | ${pct(r.fraction)} | ${pct(r.ofPeer)} |`);
  }
  console.log(`\nwritten to ${file}`);
  dev.destroy();
  return result;
}

/**
 * Decode attention (batches of sequences of one context length) and prefill attention (several
 * short prompts in one launch, or one long prompt) at LLaMA-7B's 32 heads of 128 over an f16
 * cache in blocks of 16. Decode is memory-bound: the floor is reading every sequence's K and V
 * once. Prefill is compute-bound: causal attention is 2 * heads * head * T (T + 1) flops per
 * prompt (QK^T and PV over the unmasked half of the square), not the square's 4 * ... * T^2.
 */
async function attentionRows(dev: Device, quick: boolean, reps: number, trials: number, copyGBps: number, mmTflops: number): Promise<Row[]> {
  const rows: Row[] = [];
  const f = (x: number) => Math.round(x * 1000) / 1000;
  const bs = 16;
  const scale = 1 / Math.sqrt(HEAD);
  // a pool over one binding's limit (256 sequences x 1,024 tokens is 2 GiB) in parts, as the
  // engine's KV cache splits it (partLayout, by KvCache's largest part)
  const pool = (blocks: number) => {
    const blockBytes = bs * HEADS * HEAD * 2;
    const { parts, blocksPerPart } = partLayout(blocks, blockBytes, KvCache.maxPartBytes(dev));
    const make = (scale: number) => {
      const ts = Array.from({ length: parts }, (_, i) => {
        const nb = Math.min(blocksPerPart, blocks - i * blocksPerPart);
        return fromArray(dev, rand(nb * bs * HEADS * HEAD, scale), [nb, bs, HEADS, HEAD], 'f16');
      });
      return parts === 1 ? ts[0] : ts;
    };
    return { keyCache: make(1), valueCache: make(0.5) };
  };
  const freePool = (p: KvPool) => {
    for (const t of poolParts(p)) dev.free(t.buffer);
  };
  const ctx = quick ? 256 : 1024;
  for (const b of quick ? [1, 16] : [1, 16, 64, 128, 256]) {
    const per = ctx / bs;
    const cache = pool(b * per);
    const tables = fromArray(dev, Array.from({ length: b * per }, (_, i) => i), [b, per], 'i32');
    const lens = fromArray(dev, new Array(b).fill(ctx), [b], 'i32');
    const q = fromArray(dev, rand(b * H), [b, H], 'f32');
    const out = empty(dev, [b, H], 'f32');
    try {
      const ms = await time(dev, 'paged_attention', () => ({ q, ...cache, blockTables: tables, contextLens: lens, out, scale }), reps, trials);
      const bytes = 2 * b * ctx * H * 2 + 2 * b * H * 4;
      rows.push({ op: 'paged_attention decode', shape: `${b} seqs x ${ctx} tokens, ${HEADS} x ${HEAD} f16`, ms: f(ms), gbps: f(bytes / (ms * 1e6)), fraction: f(bytes / (ms * 1e6) / copyGBps), bound: 'memory' });
    } catch (e) {
      console.error(`paged_attention at batch ${b}: ${(e as Error).message}`);
    }
    freePool(cache.keyCache);
    freePool(cache.valueCache);
    for (const t of [tables, lens, q, out]) dev.free(t.buffer);
  }
  // prefill: a chunked-prefill step of the throughput benchmark (8 prompts of 256 tokens, the
  // scheduler's 2,048-token budget) and single long prompts
  for (const [seqs, T] of quick ? [[1, 128], [4, 128]] : [[8, 256], [1, 512], [1, 2048], [1, 4096]]) {
    const per = T / bs;
    const cache = pool(seqs * per);
    const tables = fromArray(dev, Array.from({ length: seqs * per }, (_, i) => i), [seqs, per], 'i32');
    const lens = fromArray(dev, new Array(seqs).fill(T), [seqs], 'i32');
    const starts = fromArray(dev, Array.from({ length: seqs + 1 }, (_, i) => i * T), [seqs + 1], 'i32');
    const q = fromArray(dev, rand(seqs * T * H), [seqs * T, H], 'f32');
    const out = empty(dev, [seqs * T, H], 'f32');
    try {
      const ms = await time(dev, 'prefill_attention', () => ({ q, ...cache, blockTables: tables, queryStarts: starts, contextLens: lens, out, scale }), quick ? 1 : 3, trials);
      // causal: T (T + 1) / 2 unmasked (query, key) pairs per prompt and head, 4 * HEAD flops each (QK^T and PV)
      const tflops = (seqs * HEADS * 2 * HEAD * T * (T + 1)) / (ms * 1e9);
      rows.push({ op: 'prefill_attention', shape: `${seqs} prompt${seqs > 1 ? 's' : ''} x ${T} tokens, ${HEADS} x ${HEAD} f16`, ms: f(ms), tflops: f(tflops), fraction: f(tflops / mmTflops), bound: 'compute' });
    } catch (e) {
      console.error(`prefill_attention at ${seqs} x ${T} tokens: ${(e as Error).message}`);
    }
    freePool(cache.keyCache);
    freePool(cache.valueCache);
    for (const t of [tables, lens, starts, q, out]) dev.free(t.buffer);
  }
  return rows;
}

// `npm run bench:ops -- [--quick] [--backend b] [--out dir] [--peer file] [--only rowops,decode,batch,logits,attention]`
if (import.meta.url === `file://${process.argv[1]}`) {
  const argv = process.argv.slice(2);
  const val = (flag: string, d: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : d;
  };
  await runOpsBench({ backend: val('--backend', 'webgpu'), out: val('--out', 'bench/results'), quick: argv.includes('--quick'), peer: val('--peer', '') || undefined, only: val('--only', '') || undefined });
  process.exit(0);
}

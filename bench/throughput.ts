// The throughput benchmark (`parallm bench throughput`, like vLLM's benchmark_throughput): all
// requests of a workload submitted at once to one engine, timed to the last token. Prints and
// writes JSON: total and output tokens/s, requests/min, KV blocks at peak and their waste,
// preemptions, the GPU's idle fraction between steps, and the device's name.

import { execSync } from 'node:child_process';
import type { DispatchProfile } from '../src/device/webgpu/profile.ts';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SingleBar } from 'cli-progress';
import type { GpuGap } from '../src/engine/llm-engine.ts';
import { LLM } from '../src/engine/llm.ts';
import type { PresetName } from '../src/model/config.ts';
import { type Ceilings, H200, rooflineTokensPerS } from './roofline.ts';
import { resultSlug } from './slug.ts';
import { type Workload, fixedWorkload, sharegptDataset, sharegptShapedWorkload, workloadStats } from './workloads.ts';

export interface ThroughputOptions {
  model?: string;
  dummy?: PresetName;
  backend: string;
  workload: 'fixed' | 'sharegpt-shaped';
  dataset?: string;
  inputLen: number;
  outputLen: number;
  numPrompts: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  numGpuBlocks?: number;
  blockSize?: number;
  seed: number;
  out: string;
  /** PyTorch's ceilings on this GPU (scripts/torch_ceilings.py JSON) for the roofline; default: H200's from ARCHITECTURE.md. */
  ceilings?: string;
  /** Peers measured on the same GPU and workload (scripts/peers_throughput.py JSON), put in the result beside parallm. */
  peers?: string;
  /** Launch step N+1 while step N runs (default true; `--no-overlap` turns it off for an A/B). */
  overlap?: boolean;
  /** Build each step shape's kernels before the run (LLM's `warmup`; default on a GPU; `--no-warmup` for an A/B). */
  warmup?: boolean;
}

/** What a device may expose for a run's diagnostics: WebGPU's build, host and dispatch stats, native's launch profile. */
interface DeviceDiagnostics {
  kernels?: { builds: { count: number; ms: number; keys: string[] } };
  hostStats?: { submits: number; encodeMs: number; submitMs: number; bindGroups: number };
  profile?: DispatchProfile;
  addon?: { profile?: () => Record<string, [number, number]> };
}

export async function runThroughput(o: ThroughputOptions): Promise<Record<string, unknown>> {
  const llm = await LLM.create({
    model: o.model,
    dummy: o.dummy,
    backend: o.backend,
    maxNumSeqs: o.maxNumSeqs,
    maxNumBatchedTokens: o.maxNumBatchedTokens,
    numGpuBlocks: o.numGpuBlocks,
    blockSize: o.blockSize,
    timing: true,
    overlapSteps: o.overlap ?? true,
    warmup: o.warmup,
  });
  const vocab = llm.config.vocabSize;
  let w: Workload;
  if (o.dataset) {
    const tok = llm.engine.tokenizer;
    if (!tok) throw new Error('--dataset needs a model directory with a tokenizer (--model)');
    w = sharegptDataset(o.dataset, o.numPrompts, (t) => tok.encode(t), o.seed);
  } else if (o.workload === 'sharegpt-shaped') w = sharegptShapedWorkload(o.numPrompts, vocab, o.seed);
  else w = fixedWorkload(o.numPrompts, o.inputLen, o.outputLen, vocab, o.seed);
  const stats = workloadStats(w);

  const bar = process.stderr.isTTY ? new SingleBar({ format: 'requests |{bar}| {value}/{total} {eta_formatted}', stream: process.stderr }) : undefined;
  bar?.start(w.requests.length, 0);
  // the run's diagnostics count from here: the warm-up in LLM.create ran the model already
  const diag = llm.device as unknown as DeviceDiagnostics;
  const nativeProfile = process.env.PARALLM_NATIVE_PROFILE === '1' ? diag.addon?.profile?.bind(diag.addon) : undefined;
  const buildsBefore = diag.kernels?.builds.count ?? 0;
  const buildMsBefore = diag.kernels?.builds.ms ?? 0;
  const hostBefore = diag.hostStats && { ...diag.hostStats };
  diag.profile?.reset();
  const nativeBefore = nativeProfile?.() ?? {};
  const t0 = performance.now();
  let done = 0;
  let outputTokens = 0;
  // sampling as vLLM's benchmark: temperature 1, EOS ignored, exactly outputLen tokens each
  await Promise.all(
    w.requests.map((r, i) =>
      llm
        .stream(r.promptIds, { temperature: 1, topP: 1, maxTokens: r.outputLen, ignoreEos: true, seed: o.seed + i })
        .final()
        .then((out) => {
          outputTokens += out.outputs[0].tokenIds.length;
          bar?.update(++done);
        }),
    ),
  );
  const seconds = (performance.now() - t0) / 1000;
  bar?.stop();
  const s = llm.engine.stats;
  let commit = process.env.PARALLM_COMMIT ?? 'unknown';
  try {
    commit = process.env.PARALLM_COMMIT ?? execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {}
  const result: Record<string, any> = {
    gpu: llm.device.info.name,
    device: llm.device.info.description,
    backend: o.backend,
    date: new Date().toISOString().slice(0, 10),
    commit,
    model: o.model ?? `dummy ${o.dummy}`,
    workload: w.name,
    source: w.source,
    requests: stats.requests,
    promptTokens: stats.promptTokens,
    outputTokens,
    seconds: round(seconds),
    totalTokensPerS: round((stats.promptTokens + outputTokens) / seconds),
    outputTokensPerS: round(outputTokens / seconds),
    requestsPerMin: round((stats.requests / seconds) * 60),
    steps: s.steps,
    overlappedSteps: s.overlappedSteps,
    kvBlocks: llm.cache.numBlocks,
    kvBlocksUsedPeak: s.maxUsedBlocks,
    kvWasteAtPeak: round(s.wasteAtPeak),
    preemptions: s.preemptions,
    gpuIdleFraction: s.wallMs > 0 && s.gpuMs > 0 ? round(Math.max(0, 1 - s.gpuMs / s.wallMs)) : null,
    hostWaitFraction: s.wallMs > 0 ? round(s.waitMs / s.wallMs) : null,
  };
  // webgpu: the device's idle time between consecutive steps, from their timestamps, split by
  // whether the later step was launched while the earlier one was in flight, with the largest
  // gaps and the host's phases around them
  if (s.gpuGaps?.length) result.gpuGapsMs = gapSummary(s.gpuGaps);
  // the collections the engine made at step boundaries (src/util/step-gc.ts: WebGPU by default)
  const sg = llm.engine.stepGc;
  if (sg) result.stepGc = { thresholdMb: sg.thresholdMb, collections: sg.collections, ms: round(sg.ms) };
  // webgpu: the host's recording and submitting, and the pipelines compiled during the run (the
  // host blocks on each while the GPU may idle)
  const host = diag.hostStats;
  if (host && hostBefore) Object.assign(result, { hostSubmits: host.submits - hostBefore.submits, hostEncodeMs: round(host.encodeMs - hostBefore.encodeMs), hostSubmitMs: round(host.submitMs - hostBefore.submitMs), bindGroupsMade: host.bindGroups - hostBefore.bindGroups });
  const builds = diag.kernels?.builds;
  if (builds) Object.assign(result, { kernelBuilds: builds.count - buildsBefore, kernelBuildMs: round(builds.ms - buildMsBefore), kernelsBuilt: builds.keys.slice(buildsBefore) });
  // the roofline of this workload (ARCHITECTURE.md) and the peers measured on the same GPU
  let ceil: Ceilings = H200;
  let ceilSource = 'H200 as ARCHITECTURE.md states it';
  if (o.ceilings) {
    const t = JSON.parse(readFileSync(o.ceilings, 'utf8')) as Record<string, number | string>;
    ceil = { bytesPerS: Number(t.copyGBps) * 1e9, flopsPerS: Number(t['matmul_float16_8192x8192x8192_tflops']) * 1e12 };
    ceilSource = `PyTorch on ${t.gpu}: copy ${t.copyGBps} GB/s, f16 matmul ${t['matmul_float16_8192x8192x8192_tflops']} TFLOP/s`;
  }
  const roofline = rooflineTokensPerS(llm.config, w.requests, o.maxNumSeqs ?? 256, ceil);
  const extra: Record<string, unknown> = { rooflineTokensPerS: round(roofline), ofRoofline: round(result.totalTokensPerS / roofline), rooflineCeilings: ceilSource };
  if (o.peers) {
    const peers = JSON.parse(readFileSync(o.peers, 'utf8')) as { peers: { peer: string; totalTokensPerS?: number }[]; requests: number; workload: string; gpu: string };
    extra.peers = peers;
    const hf = peers.peers.find((p) => p.peer === 'hf-generate-static' && p.totalTokensPerS);
    if (hf) extra.vsHfGenerateStatic = round(result.totalTokensPerS / hf.totalTokensPerS!);
  }
  Object.assign(result, extra);
  // PARALLM_NATIVE_PROFILE=1 on native: the GPU time of the run per op (launch events)
  const profAll = nativeProfile?.();
  const prof = profAll
    ? Object.fromEntries(
        Object.entries(profAll)
          .map(([k, [ms, n]]): [string, [number, number]] => [k, [ms - (nativeBefore[k]?.[0] ?? 0), n - (nativeBefore[k]?.[1] ?? 0)]])
          .filter(([, [, n]]) => n > 0),
      )
    : undefined;
  if (prof && Object.keys(prof).length) {
    const total = Object.values(prof).reduce((a, [ms]) => a + ms, 0);
    result.profile = Object.fromEntries(
      Object.entries(prof)
        .sort((a, b) => b[1][0] - a[1][0])
        .map(([k, [ms, n]]) => [k, { ms: round(ms), launches: n, share: round(ms / total) }]),
    );
    console.error(`GPU time by op (${round(total)} ms in all):`);
    for (const [k, v] of Object.entries(result.profile as Record<string, { ms: number; launches: number; share: number }>)) console.error(`  ${k.padEnd(32)} ${String(v.ms).padStart(10)} ms ${String(v.launches).padStart(8)} launches ${(v.share * 100).toFixed(1).padStart(5)}%`);
  }
  // PARALLM_WEBGPU_PROFILE=1 on webgpu: the GPU time of the run per dispatch (src/device/webgpu/profile.ts)
  const wprof = diag.profile;
  if (wprof) {
    const rows = wprof.report();
    const total = rows.reduce((a, r) => a + r.ms, 0);
    result.profile = Object.fromEntries(rows.map((r) => [r.key, { ms: round(r.ms), launches: r.count, share: round(r.ms / total) }]));
    console.error(wprof.table());
  }
  await llm.close();
  mkdirSync(o.out, { recursive: true });
  const file = join(o.out, `throughput-${resultSlug(String(result.gpu))}-${result.date}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  console.log(JSON.stringify(result, null, 2));
  console.log(`written to ${file}`);
  return result;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/**
 * Sum, spread and split (queued behind the step before, or not) of the device's gaps between
 * steps, and the largest ones with what the host did around them.
 */
export function gapSummary(gaps: (Pick<GpuGap, 'ms' | 'queued'> & Partial<GpuGap>)[]) {
  const ms = gaps.map((g) => g.ms).sort((a, b) => a - b);
  const at = (q: number) => round(ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]);
  const sum = (f: (g: { ms: number; queued: boolean }) => boolean) => round(gaps.filter(f).reduce((a, g) => a + Math.max(0, g.ms), 0));
  return {
    gaps: gaps.length,
    totalMs: sum(() => true),
    queuedMs: sum((g) => g.queued),
    notQueuedMs: sum((g) => !g.queued),
    notQueued: gaps.filter((g) => !g.queued).length,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: round(ms[ms.length - 1]),
    over2ms: gaps.filter((g) => g.ms > 2).length,
    negative: gaps.filter((g) => g.ms < 0).length,
    largest: [...gaps]
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 10)
      .map((g) => Object.fromEntries(Object.entries(g).map(([k, v]) => [k, typeof v === 'number' ? round(v) : v]))),
  };
}

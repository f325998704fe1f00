// The serving benchmark (`parallm bench serving`, like vLLM's benchmark_serving): the requests of
// a workload sent over HTTP to a running OpenAI-compatible server (parallm serve, vLLM, ...) with
// Poisson arrivals at each of several request rates, streamed back as server-sent events. Per
// rate: duration, completed and failed requests, request and token throughput, the vLLM paper's
// mean normalized latency (mean over requests of e2e latency / (prompt + output tokens), s/token),
// TTFT, inter-token latency and e2e latency percentiles. Writes JSON, and the paper's figure
// (request throughput against mean normalized latency, one line per label) as SVG via
// bench/serving-plot.ts. With spawnModel, starts `parallm serve` as a child for the run.

import { type ChildProcess, execSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mulberry32 } from '../src/util/prng.ts';
import { type BenchRequest, type Workload, fixedWorkload, sharegptDataset, sharegptShapedWorkload, workloadStats } from './workloads.ts';
import { type RateMetrics, summarize } from './serving-metrics.ts';
import { resultSlug } from './slug.ts';

// ---------------------------------------------------------------------------------------------
// Arrivals

/**
 * Seeded exponential inter-arrival gaps (seconds) of a Poisson process at `rate` requests/s:
 * gap_i = -ln(1 - u_i) / rate. The first request waits a gap too, as in vLLM. rate = Infinity
 * gives all zeros (every request at once).
 */
export function poissonGaps(n: number, rate: number, seed = 0): number[] {
  if (!(rate > 0)) throw new Error(`request rate must be > 0, got ${rate}`);
  if (rate === Infinity) return new Array<number>(n).fill(0);
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => -Math.log(1 - r()) / rate);
}

/** Send times (seconds after the start) of n requests: the running sum of poissonGaps. */
export function arrivalTimes(n: number, rate: number, seed = 0): number[] {
  let t = 0;
  return poissonGaps(n, rate, seed).map((g) => (t += g));
}

/** "1,2,4,inf" -> [1, 2, 4, Infinity]. */
export function parseRates(s: string): number[] {
  return s.split(',').map((x) => {
    const v = x.trim().toLowerCase();
    const n = v === 'inf' || v === 'infinity' ? Infinity : Number(v);
    if (!(n > 0)) throw new Error(`--request-rates: '${x}' is not a positive number or inf`);
    return n;
  });
}

// ---------------------------------------------------------------------------------------------
// One request over HTTP

export interface RequestResult {
  ok: boolean;
  error?: string;
  promptTokens: number;
  outputTokens: number;
  /** Seconds from send to the first streamed chunk. */
  ttft: number;
  /** Seconds between consecutive streamed chunks. */
  itl: number[];
  /** Seconds from send to the end of the stream. */
  latency: number;
}

export { type Dist, percentile, type RateMetrics, summarize } from './serving-metrics.ts';

export interface RequestTarget {
  baseUrl: string;
  model: string;
  apiKey?: string;
}

/** Sends one streamed completion (token-id prompt, exactly outputLen tokens) and times its chunks. */
export async function sendRequest(t: RequestTarget, r: BenchRequest, seed?: number): Promise<RequestResult> {
  const body = {
    model: t.model,
    prompt: r.promptIds,
    max_tokens: r.outputLen,
    temperature: 1,
    top_p: 1,
    ignore_eos: true,
    stream: true,
    stream_options: { include_usage: true },
    ...(seed !== undefined ? { seed } : {}),
  };
  const res0: RequestResult = { ok: false, promptTokens: r.promptIds.length, outputTokens: 0, ttft: NaN, itl: [], latency: NaN };
  const start = performance.now();
  let last = start;
  let chunks = 0;
  let usageTokens: number | undefined;
  try {
    const res = await fetch(new URL('/v1/completions', t.baseUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(t.apiKey ? { authorization: `Bearer ${t.apiKey}` } : {}) },
      body: JSON.stringify(body),
    });
    if (!res.ok || !res.body) return { ...res0, error: `HTTP ${res.status}: ${(await res.text()).slice(0, 300)}` };
    const decoder = new TextDecoder();
    let buf = '';
    let done = false;
    const reader = res.body.getReader();
    while (!done) {
      const { value, done: end } = await reader.read();
      if (end) break;
      buf += decoder.decode(value, { stream: true });
      let k: number;
      while ((k = buf.search(/\r?\n\r?\n/)) >= 0) {
        const event = buf.slice(0, k);
        buf = buf.slice(k).replace(/^\r?\n\r?\n/, '');
        const data = event
          .split(/\r?\n/)
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).trimStart())
          .join('\n');
        if (!data) continue;
        if (data === '[DONE]') {
          done = true;
          break;
        }
        const msg = JSON.parse(data) as { error?: { message?: string }; choices?: { text?: string }[]; usage?: { completion_tokens?: number; prompt_tokens?: number } | null };
        if (msg.error) return { ...res0, error: `stream error: ${msg.error.message ?? JSON.stringify(msg.error)}` };
        if (msg.usage) {
          usageTokens = msg.usage.completion_tokens;
          if (msg.usage.prompt_tokens !== undefined) res0.promptTokens = msg.usage.prompt_tokens;
        }
        if (msg.choices?.length) {
          const now = performance.now();
          if (chunks === 0) res0.ttft = (now - start) / 1000;
          else res0.itl.push((now - last) / 1000);
          last = now;
          chunks++;
        }
      }
    }
    await reader.cancel().catch(() => {});
    const latency = (performance.now() - start) / 1000;
    if (chunks === 0) return { ...res0, error: 'the stream ended without a chunk' };
    // a chunk can carry several tokens (text held back mid-character): usage counts them all
    return { ...res0, ok: true, outputTokens: usageTokens ?? chunks, latency };
  } catch (e) {
    return { ...res0, error: (e as Error).message };
  }
}

// ---------------------------------------------------------------------------------------------
// Metrics

/** The q-th percentile (0..100) with linear interpolation (numpy's default); NaN for []. */
export async function runRate(t: RequestTarget, requests: readonly BenchRequest[], rate: number, seed: number, onDone?: () => void): Promise<{ metrics: RateMetrics; results: RequestResult[] }> {
  const times = arrivalTimes(requests.length, rate, seed);
  const t0 = performance.now();
  const pending: Promise<RequestResult>[] = [];
  for (let i = 0; i < requests.length; i++) {
    const wait = t0 + times[i] * 1000 - performance.now();
    if (wait > 0) await new Promise((res) => setTimeout(res, wait));
    pending.push(
      sendRequest(t, requests[i], seed + i).then((r) => {
        onDone?.();
        return r;
      }),
    );
  }
  const results = await Promise.all(pending);
  const duration = (performance.now() - t0) / 1000;
  return { metrics: summarize(rate, duration, results), results };
}

// ---------------------------------------------------------------------------------------------
// The whole run

export interface ServingOptions {
  baseUrl: string;
  /** The served model name to request (default: the first of GET /v1/models). */
  model?: string;
  apiKey?: string;
  label?: string;
  workload: 'fixed' | 'sharegpt-shaped';
  dataset?: string;
  /** Model directory whose tokenizer encodes --dataset and whose config gives the vocabulary. */
  tokenizer?: string;
  vocabSize?: number;
  inputLen: number;
  outputLen: number;
  numPrompts: number;
  requestRates: number[];
  seed: number;
  /** Directory for the JSON result; undefined: none written. */
  out?: string;
  /** Draw the figure to this SVG file: this result plus plotInputs. */
  plot?: string;
  plotInputs?: string[];
  spawnModel?: string;
  spawnBackend?: string;
  /** Extra `parallm serve` arguments for the spawned server. */
  spawnArgs?: string[];
  quiet?: boolean;
}

export interface ServingResult {
  label: string;
  baseUrl: string;
  model: string;
  modelRoot: string | null;
  backend: string | null;
  gpu: string | null;
  date: string;
  commit: string | null;
  workload: string;
  source: string;
  requests: number;
  promptTokens: number;
  outputTokens: number;
  seed: number;
  rates: RateMetrics[];
}

interface Spawned {
  child: ChildProcess;
  baseUrl: string;
  backend?: string;
  gpu?: string;
  log: string[];
}

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Starts `node bin/parallm.js serve --model DIR --port 0 ...` and waits for its "listening on" line. */
export async function spawnServer(model: string, backend: string | undefined, extra: string[] = [], timeoutMs = 600_000): Promise<Spawned> {
  const args = [join(REPO, 'bin/parallm.js'), 'serve', '--model', model, '--port', '0', ...(backend ? ['--backend', backend] : []), ...extra];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  return new Promise<Spawned>((res, rej) => {
    let backendName: string | undefined;
    let gpu: string | undefined;
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      rej(new Error(`parallm serve did not start listening in ${timeoutMs / 1000} s:\n${log.slice(-20).join('\n')}`));
    }, timeoutMs);
    const onLine = (line: string) => {
      log.push(line);
      const m = /model .* on (\S+) \((.*)\), max model len/.exec(line);
      if (m) [backendName, gpu] = [m[1], m[2]];
      const l = /listening on (\S+)/.exec(line);
      if (l) {
        clearTimeout(timer);
        res({ child, baseUrl: l[1], backend: backendName, gpu, log });
      }
    };
    let partial = '';
    const feed = (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop()!;
      lines.forEach(onLine);
    };
    child.stdout!.on('data', feed);
    child.stderr!.on('data', (d: Buffer) => log.push(...d.toString().split('\n').filter(Boolean)));
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      rej(new Error(`parallm serve exited (${code ?? sig}) before listening:\n${log.slice(-20).join('\n')}`));
    });
  });
}

/** SIGTERM, then SIGKILL if it has not exited in graceMs. */
export async function stopServer(s: Spawned, graceMs = 30_000): Promise<void> {
  const c = s.child;
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((res) => c.once('exit', () => res()));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

function gitCommit(): string | null {
  if (process.env.PARALLM_COMMIT) return process.env.PARALLM_COMMIT;
  try {
    return execSync('git rev-parse --short HEAD', { cwd: REPO, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return null;
  }
}


function vocabOf(dir: string | undefined): number | undefined {
  if (!dir) return undefined;
  try {
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { vocab_size?: number; text_config?: { vocab_size?: number } };
    return c.vocab_size ?? c.text_config?.vocab_size;
  } catch {
    return undefined;
  }
}

/** JSON has no Infinity: the inf rate is written "inf". */
export function toJson(r: ServingResult): string {
  return JSON.stringify(r, (k, v) => (k === 'requestRate' && v === Infinity ? 'inf' : typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n';
}

export async function runServing(o: ServingOptions): Promise<{ result: ServingResult; file?: string; svg?: string }> {
  const say = o.quiet ? () => {} : (s: string) => console.error(s);
  let spawned: Spawned | undefined;
  if (o.spawnModel) {
    say(`bench serving: starting parallm serve --model ${o.spawnModel}${o.spawnBackend ? ` --backend ${o.spawnBackend}` : ''}`);
    spawned = await spawnServer(o.spawnModel, o.spawnBackend, o.spawnArgs);
    say(`bench serving: server at ${spawned.baseUrl}`);
  }
  try {
    const baseUrl = spawned?.baseUrl ?? o.baseUrl;
    let model = o.model;
    let modelRoot: string | null = null;
    try {
      const res = await fetch(new URL('/v1/models', baseUrl), { headers: o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {} });
      const list = (await res.json()) as { data?: { id: string; root?: string }[] };
      const card = list.data?.find((m) => !model || m.id === model) ?? list.data?.[0];
      model ??= card?.id;
      modelRoot = card?.root ?? null;
    } catch (e) {
      if (!model) throw new Error(`cannot list the models at ${baseUrl}/v1/models (${(e as Error).message}); give --model NAME`);
    }
    if (!model) throw new Error(`${baseUrl}/v1/models lists no model; give --model NAME`);

    const tokDir = o.tokenizer ?? o.spawnModel ?? (modelRoot && existsSync(join(modelRoot, 'config.json')) ? modelRoot : undefined);
    const vocab = o.vocabSize ?? vocabOf(tokDir) ?? 32000;
    let w: Workload;
    if (o.dataset) {
      if (!tokDir) throw new Error('--dataset needs a tokenizer: give --tokenizer DIR (a model directory)');
      const { Tokenizer } = await import('../src/tokenizer/tokenizer.ts');
      const tok = await Tokenizer.load(tokDir);
      w = sharegptDataset(o.dataset, o.numPrompts, (t) => tok.encode(t), o.seed);
    } else if (o.workload === 'sharegpt-shaped') w = sharegptShapedWorkload(o.numPrompts, vocab, o.seed);
    else w = fixedWorkload(o.numPrompts, o.inputLen, o.outputLen, vocab, o.seed);
    const stats = workloadStats(w);
    const target: RequestTarget = { baseUrl, model, apiKey: o.apiKey };

    // one short request first: fails fast on a wrong URL or model, and warms the server up
    const warm = await sendRequest(target, { promptIds: w.requests[0].promptIds, outputLen: 1 }, o.seed);
    if (!warm.ok) throw new Error(`the warm-up request to ${baseUrl} failed: ${warm.error}`);

    const rates: RateMetrics[] = [];
    for (const rate of o.requestRates) {
      say(`bench serving: ${w.requests.length} requests at ${rate === Infinity ? 'inf' : rate} req/s`);
      const { metrics } = await runRate(target, w.requests, rate, o.seed);
      rates.push(metrics);
      say(
        `  ${metrics.completed} ok, ${metrics.failed} failed in ${metrics.duration.toFixed(2)} s: ${metrics.requestThroughput.toFixed(2)} req/s, ` +
          `${metrics.outputThroughput.toFixed(1)} output tok/s, normalized latency ${(metrics.meanNormalizedLatency * 1000).toFixed(2)} ms/token, ` +
          `TTFT p50 ${(metrics.ttft.p50 * 1000).toFixed(1)} ms, ITL p50 ${(metrics.itl.p50 * 1000).toFixed(1)} ms` +
          (metrics.errors.length ? `\n  errors: ${metrics.errors.join(' | ')}` : ''),
      );
    }

    const result: ServingResult = {
      label: o.label ?? (spawned ? `parallm ${spawned.backend ?? o.spawnBackend ?? ''}`.trim() : model),
      baseUrl,
      model,
      modelRoot,
      backend: spawned?.backend ?? o.spawnBackend ?? null,
      gpu: spawned?.gpu ?? null,
      date: new Date().toISOString().slice(0, 10),
      // the server's commit is known when this checkout spawned it; else what PARALLM_COMMIT says
      commit: spawned ? gitCommit() : (process.env.PARALLM_COMMIT ?? null),
      workload: w.name,
      source: w.source,
      requests: stats.requests,
      promptTokens: stats.promptTokens,
      outputTokens: stats.outputTokens,
      seed: o.seed,
      rates,
    };
    let file: string | undefined;
    if (o.out) {
      mkdirSync(o.out, { recursive: true });
      file = join(o.out, `serving-${resultSlug(result.gpu ?? result.label, 'server')}-${result.date}.json`);
      writeFileSync(file, toJson(result));
      say(`bench serving: written to ${file}`);
    }
    let svg: string | undefined;
    if (o.plot) {
      const others = (o.plotInputs ?? []).map((f) => JSON.parse(readFileSync(f, 'utf8')) as ServingResult);
      // loaded only to draw: vega is large, and the GPU machine's package set leaves it out
      const { plotServing } = await import('./serving-plot.ts');
      await plotServing([...others, result], o.plot);
      svg = o.plot;
      say(`bench serving: figure written to ${o.plot}`);
    }
    return { result, file, svg };
  } finally {
    if (spawned) {
      say('bench serving: stopping the server (SIGTERM)');
      await stopServer(spawned);
    }
  }
}

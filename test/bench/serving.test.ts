// `parallm bench serving` end to end on the CPU backend: an in-process server over the tiny
// fixture model, two request rates of short requests, the metrics, the seeded Poisson arrivals
// and the SVG figure.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RateMetrics, type ServingResult, arrivalTimes, parseRates, percentile, poissonGaps, runServing } from '../../bench/serving.ts';
import { plotPoints } from '../../bench/serving-plot.ts';
import { fixedWorkload, workloadStats } from '../../bench/workloads.ts';
import { LLM } from '../../src/engine/llm.ts';
import { type Server, createServer } from '../../src/server/app.ts';

const MODEL_DIR = 'test/fixtures/hf/tiny-llama';
const N = 12;
const INPUT = 8;
const OUTPUT = 4;

let llm: LLM;
let app: Server;
let url: string;
let dir: string;

beforeAll(async () => {
  llm = await LLM.create({ model: MODEL_DIR, backend: 'cpu', numGpuBlocks: 256, blockSize: 4 });
  app = createServer(llm, { servedModelName: 'tiny' });
  url = await app.listen({ host: '127.0.0.1', port: 0 });
  dir = mkdtempSync(join(tmpdir(), 'parallm-serving-'));
});

afterAll(async () => {
  await app?.close();
  await llm?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('Poisson arrivals', () => {
  it('are seeded: the same seed gives the same schedule, another seed another', () => {
    expect(poissonGaps(50, 4, 7)).toEqual(poissonGaps(50, 4, 7));
    expect(poissonGaps(50, 4, 7)).not.toEqual(poissonGaps(50, 4, 8));
  });

  it('have exponential gaps of mean 1/rate', () => {
    for (const rate of [0.5, 4, 20]) {
      const g = poissonGaps(40_000, rate, 1);
      expect(g.every((x) => x >= 0 && Number.isFinite(x))).toBe(true);
      const mean = g.reduce((a, b) => a + b, 0) / g.length;
      // standard error of the mean is (1/rate)/sqrt(n) = 0.5 % of it
      expect(Math.abs(mean * rate - 1)).toBeLessThan(0.025);
      // exponential: the median is ln 2 / rate, the std the mean
      expect(Math.abs(percentile(g, 50) * rate - Math.LN2)).toBeLessThan(0.03);
      const sd = Math.sqrt(g.reduce((a, b) => a + (b - mean) ** 2, 0) / g.length);
      expect(Math.abs(sd * rate - 1)).toBeLessThan(0.05);
    }
  });

  it('inf sends everything at once; arrival times are the running sums', () => {
    expect(poissonGaps(5, Infinity)).toEqual([0, 0, 0, 0, 0]);
    const g = poissonGaps(10, 3, 2);
    const t = arrivalTimes(10, 3, 2);
    expect(t[9]).toBeCloseTo(g.reduce((a, b) => a + b, 0), 12);
    expect(t.every((x, i) => i === 0 || x >= t[i - 1])).toBe(true);
    expect(parseRates('1, 2.5,inf')).toEqual([1, 2.5, Infinity]);
    expect(() => parseRates('1,0')).toThrow();
  });

  it('percentiles interpolate linearly', () => {
    expect(percentile([1, 2, 3, 4, 5], 50)).toBe(3);
    expect(percentile([0, 10], 90)).toBe(9);
    expect(percentile([], 50)).toBeNaN();
  });
});

describe('bench serving against an in-process server', () => {
  let result: ServingResult;
  let file: string | undefined;
  let svg: string | undefined;

  beforeAll(async () => {
    ({ result, file, svg } = await runServing({
      baseUrl: url,
      label: 'parallm cpu',
      workload: 'fixed',
      inputLen: INPUT,
      outputLen: OUTPUT,
      numPrompts: N,
      requestRates: [20, Infinity],
      seed: 3,
      tokenizer: MODEL_DIR,
      out: dir,
      plot: join(dir, 'serving.svg'),
      quiet: true,
    }));
  });

  it('completes every request with the workload token counts', () => {
    expect(result.model).toBe('tiny');
    expect(result.rates.map((r) => r.requestRate)).toEqual([20, Infinity]);
    const stats = workloadStats(fixedWorkload(N, INPUT, OUTPUT, llm.config.vocabSize, 3));
    expect(result.promptTokens).toBe(stats.promptTokens);
    for (const r of result.rates) {
      expect(r.errors).toEqual([]);
      expect(r.completed).toBe(N);
      expect(r.failed).toBe(0);
      expect(r.promptTokens).toBe(N * INPUT);
      expect(r.outputTokens).toBe(N * OUTPUT);
    }
  });

  it('gives finite, ordered metrics', () => {
    const dists = (r: RateMetrics) => [r.ttft, r.itl, r.e2e];
    for (const r of result.rates) {
      for (const x of [r.duration, r.requestThroughput, r.outputThroughput, r.totalTokenThroughput, r.meanNormalizedLatency]) {
        expect(Number.isFinite(x)).toBe(true);
        expect(x).toBeGreaterThan(0);
      }
      expect(r.totalTokenThroughput).toBeCloseTo(r.outputThroughput * ((INPUT + OUTPUT) / OUTPUT), 6);
      for (const d of dists(r)) {
        for (const v of [d.mean, d.p50, d.p90, d.p99]) {
          expect(Number.isFinite(v)).toBe(true);
          expect(v).toBeGreaterThanOrEqual(0);
        }
        expect(d.p50).toBeLessThanOrEqual(d.p90);
        expect(d.p90).toBeLessThanOrEqual(d.p99);
      }
      // a request's first token comes before its last
      expect(r.ttft.p50).toBeLessThanOrEqual(r.e2e.p50);
      // normalized latency is e2e latency over 12 tokens per request
      expect(r.meanNormalizedLatency).toBeCloseTo(r.e2e.mean / (INPUT + OUTPUT), 9);
    }
    // at 20 req/s the 12 arrivals span about half a second
    const at20 = result.rates[0];
    expect(at20.duration).toBeGreaterThanOrEqual(arrivalTimes(N, 20, 3)[N - 1]);
  });

  it('writes the JSON result with inf as a string', () => {
    expect(file).toMatch(/serving-parallm-cpu-\d{4}-\d{2}-\d{2}\.json$/);
    const j = JSON.parse(readFileSync(file!, 'utf8')) as ServingResult;
    expect(j.label).toBe('parallm cpu');
    expect(j.rates[1].requestRate).toBe('inf');
    expect(j.rates[0].requestRate).toBe(20);
  });

  it('draws one line per label to SVG, merging result files', async () => {
    const count = (s: string) => (s.match(/aria-roledescription="line mark"/g) ?? []).length;
    const one = readFileSync(svg!, 'utf8');
    expect(one.startsWith('<svg')).toBe(true);
    expect(count(one)).toBe(1);
    expect(one).toContain('Request throughput (req/s)');

    // a second curve from the written file under another label, merged with --plot-inputs
    const { writeFileSync } = await import('node:fs');
    const other = join(dir, 'other.json');
    writeFileSync(other, readFileSync(file!, 'utf8').replace('"label": "parallm cpu"', '"label": "peer"'));
    const { plotServing } = await import('../../bench/serving-plot.ts');
    const merged = join(dir, 'merged.svg');
    await plotServing([file!, other], merged);
    const two = readFileSync(merged, 'utf8');
    expect(count(two)).toBe(2);
    expect(two).toContain('peer');
    expect(plotPoints([JSON.parse(readFileSync(other, 'utf8'))]).map((p) => p.requestRate)).toEqual(['20', 'inf']);
  });
});

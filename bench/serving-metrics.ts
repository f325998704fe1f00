// Serving-benchmark statistics: percentiles and the per-rate summary (throughput, mean
// normalized latency, TTFT / inter-token / end-to-end distributions).

import type { RequestResult } from './serving.ts';

export function percentile(xs: readonly number[], q: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = ((s.length - 1) * q) / 100;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

export interface Dist {
  mean: number;
  p50: number;
  p90: number;
  p99: number;
}

function dist(xs: readonly number[]): Dist {
  const mean = xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
  return { mean, p50: percentile(xs, 50), p90: percentile(xs, 90), p99: percentile(xs, 99) };
}

export interface RateMetrics {
  /** Requests/s of the arrivals; Infinity: all at once ("inf" in the JSON). */
  requestRate: number;
  duration: number;
  completed: number;
  failed: number;
  promptTokens: number;
  outputTokens: number;
  requestThroughput: number;
  outputThroughput: number;
  totalTokenThroughput: number;
  /** Mean over completed requests of e2e latency / (prompt + output tokens), s/token. */
  meanNormalizedLatency: number;
  ttft: Dist;
  itl: Dist;
  e2e: Dist;
  /** The first few errors, for diagnosis. */
  errors: string[];
}

export function summarize(requestRate: number, duration: number, results: readonly RequestResult[]): RateMetrics {
  const ok = results.filter((r) => r.ok);
  const promptTokens = ok.reduce((s, r) => s + r.promptTokens, 0);
  const outputTokens = ok.reduce((s, r) => s + r.outputTokens, 0);
  const norm = ok.map((r) => r.latency / (r.promptTokens + r.outputTokens));
  return {
    requestRate,
    duration,
    completed: ok.length,
    failed: results.length - ok.length,
    promptTokens,
    outputTokens,
    requestThroughput: ok.length / duration,
    outputThroughput: outputTokens / duration,
    totalTokenThroughput: (promptTokens + outputTokens) / duration,
    meanNormalizedLatency: dist(norm).mean,
    ttft: dist(ok.map((r) => r.ttft)),
    itl: dist(ok.flatMap((r) => r.itl)),
    e2e: dist(ok.map((r) => r.latency)),
    errors: [...new Set(results.filter((r) => !r.ok).map((r) => r.error ?? 'unknown'))].slice(0, 5),
  };
}

/** Sends the requests at their Poisson arrival times and waits for all of them. */

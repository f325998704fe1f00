// GET /metrics: Prometheus text from prom-client, named after vLLM's (`vllm:` becomes
// `parallm:`), plus the HTTP request counter and Node's process metrics.
//
//   per request (observed as its outputs stream by): time to first token, inter-token latency,
//     end-to-end latency, queue time, finished requests by reason
//   read from the engine at scrape time: running / waiting / swapped requests, KV-cache usage,
//     prefix-cache queries, hits and hit rate, preemptions, prompt and generation tokens

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { LLMEngine } from '../engine/llm-engine.ts';
import type { RequestOutput, RequestStream } from '../engine/outputs.ts';

// vLLM's buckets, with finer steps at the low end: a small model answers in milliseconds
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
const ITL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];

/** A counter that follows a running total kept elsewhere (the engine's), by its increase at each scrape. */
function follow(registry: Registry, name: string, help: string, total: () => number): Counter {
  let last = 0;
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = total();
      if (now > last) this.inc(now - last);
      last = now;
    },
  });
}

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly http: Counter<'method' | 'endpoint' | 'status'>;
  private readonly ttft: Histogram;
  private readonly itl: Histogram;
  private readonly e2e: Histogram;
  private readonly queueTime: Histogram;
  private readonly finished: Counter<'finished_reason'>;
  /** Requests not yet scheduled: request id -> when they were queued (performance.now()). */
  private readonly queued = new Map<string, number>();

  constructor(engine: LLMEngine) {
    const r = this.registry;
    collectDefaultMetrics({ register: r });
    this.http = new Counter({ name: 'http_requests_total', help: 'HTTP requests by method, route and status code', labelNames: ['method', 'endpoint', 'status'], registers: [r] });
    this.ttft = new Histogram({ name: 'parallm:time_to_first_token_seconds', help: 'Time from arrival to the first generated token', buckets: TTFT_BUCKETS, registers: [r] });
    this.itl = new Histogram({ name: 'parallm:inter_token_latency_seconds', help: 'Time between consecutive output steps of a request', buckets: ITL_BUCKETS, registers: [r] });
    this.e2e = new Histogram({ name: 'parallm:e2e_request_latency_seconds', help: 'Time from arrival to the last output of a request', buckets: LATENCY_BUCKETS, registers: [r] });
    this.queueTime = new Histogram({ name: 'parallm:request_queue_time_seconds', help: 'Time a request waited before it was first scheduled', buckets: LATENCY_BUCKETS, registers: [r] });
    this.finished = new Counter({ name: 'parallm:request_success_total', help: 'Finished engine requests by finish reason (abort: cancelled)', labelNames: ['finished_reason'], registers: [r] });

    const s = engine.scheduler;
    const gauge = (name: string, help: string, value: () => number) =>
      new Gauge({
        name,
        help,
        registers: [r],
        collect() {
          this.set(value());
        },
      });
    gauge('http_requests_in_flight', 'HTTP requests received and not yet answered', () => this.httpInFlight);
    gauge('parallm:num_requests_running', 'Requests in the running batch', () => s.running.length);
    gauge('parallm:num_requests_waiting', 'Requests waiting to be scheduled', () => s.waiting.length);
    gauge('parallm:num_requests_swapped', 'Requests whose KV blocks are swapped out to the host', () => s.swapped.length);
    gauge('parallm:kv_cache_usage_perc', 'Fraction of KV-cache blocks in use (1 = full)', () => engine.blocks.usage().usedBlocks / engine.blocks.numBlocks);
    gauge('parallm:prefix_cache_hit_rate', 'Prompt tokens found in the prefix cache / prompt tokens looked up, since start', () => {
      const b = engine.blocks;
      return b.prefixQueriedTokens ? b.prefixHitTokens / b.prefixQueriedTokens : 0;
    });
    follow(r, 'parallm:prefix_cache_queries_total', 'Prompt tokens looked up in the prefix cache', () => engine.blocks.prefixQueriedTokens);
    follow(r, 'parallm:prefix_cache_hits_total', 'Prompt tokens found in the prefix cache', () => engine.blocks.prefixHitTokens);
    follow(r, 'parallm:num_preemptions_total', 'Requests preempted (recomputed or swapped out) to free KV blocks', () => engine.stats.preemptions);
    follow(r, 'parallm:prompt_tokens_total', 'Prompt tokens of the requests received', () => engine.stats.promptTokens);
    follow(r, 'parallm:generation_tokens_total', 'Tokens generated', () => engine.stats.generatedTokens);
    engine.onFirstScheduled((id, now) => {
      const t = this.queued.get(id);
      if (t === undefined) return;
      this.queueTime.observe((now - t) / 1e3);
      this.queued.delete(id);
    });
  }

  /** HTTP requests received and not yet answered (or abandoned by their client). */
  httpInFlight = 0;

  httpRequest(method: string, endpoint: string, status: number): void {
    this.http.inc({ method, endpoint, status: String(status) });
  }

  /** Starts an engine request through `start`, timing its wait for the scheduler from now. */
  start(requestId: string, start: () => RequestStream): RequestStream {
    // before start(): an idle engine schedules the request inside addRequest
    this.queued.set(requestId, performance.now());
    try {
      return start();
    } catch (e) {
      this.queued.delete(requestId);
      throw e;
    }
  }

  /** A request's outputs, passed through while its latencies are recorded. */
  async *observe(stream: RequestStream): AsyncGenerator<RequestOutput> {
    let prev: RequestOutput | undefined;
    let prevTokens = 0;
    let finished = false;
    try {
      for await (const out of stream) {
        const m = out.metrics;
        const tokens = out.outputs.reduce((n, s) => n + s.tokenIds.length, 0);
        if (prev?.metrics.firstTokenTime === undefined) {
          if (m.firstTokenTime !== undefined) this.ttft.observe((m.firstTokenTime - m.arrivalTime) / 1e3);
        } else if (tokens > prevTokens) this.itl.observe((m.lastTokenTime - prev.metrics.lastTokenTime) / 1e3);
        if (out.finished) {
          finished = true;
          this.e2e.observe(((m.finishedTime ?? m.lastTokenTime) - m.arrivalTime) / 1e3);
          this.finished.inc({ finished_reason: out.outputs[0]?.finishReason ?? 'abort' });
        }
        prev = out;
        prevTokens = tokens;
        yield out;
      }
    } catch (e) {
      finished = true; // refused by the scheduler (or the engine failed): not a cancellation
      throw e;
    } finally {
      this.queued.delete(stream.requestId);
      // the reader stopped early: its client went away, and the request is being cancelled
      if (!finished) this.finished.inc({ finished_reason: 'abort' });
    }
  }

  /** Requests started but not yet scheduled (for tests: it empties once all are done). */
  get numQueued(): number {
    return this.queued.size;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

// One HTTP generation request on the engine: an engine request per prompt, all cancelled at
// once when the client goes away or the server gives up on them at shutdown, and their outputs
// answered whole or streamed as server-sent events (`data: {chunk}\n\n` ... `data: [DONE]\n\n`).
//
// A stream waits for each prompt's first output before it sends its headers, so a request the
// scheduler refuses still gets a 400 rather than a 200 that breaks off.

import type { ServerResponse } from 'node:http';
import type { LLM } from '../engine/llm.ts';
import type { RequestOutput } from '../engine/outputs.ts';
import type { Tokenizer } from '../tokenizer/index.ts';
import { ApiError, toApiError } from './errors.ts';
import type { ServerMetrics } from './metrics.ts';
import { DeltaTracker, chunk, fullResponse, usageChunk } from './responses.ts';
import type { GenRequest } from './validate.ts';

export interface GenContext {
  llm: LLM;
  tokenizer: Tokenizer;
  metrics: ServerMetrics;
  /** Aborted when the server stops waiting for requests in flight. */
  cancelSignal?: AbortSignal;
  /** Where errors that are bugs (500s) are reported. */
  log: (e: unknown) => void;
}

const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' };

const cancelled = () => new ApiError(503, 'the request was cancelled: the server is shutting down', null, 'server_shutting_down');
const aborted = (o: RequestOutput) => o.outputs.some((s) => s.finishReason === 'abort');

export class Generation {
  readonly id: string;
  readonly created = Math.floor(Date.now() / 1000);
  private readonly abort = new AbortController();
  private readonly onCancel = () => this.abort.abort();

  constructor(
    private readonly ctx: GenContext,
    private readonly req: GenRequest,
  ) {
    this.id = `${req.kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${crypto.randomUUID().replaceAll('-', '')}`;
    ctx.cancelSignal?.addEventListener('abort', this.onCancel, { once: true });
    if (ctx.cancelSignal?.aborted) this.abort.abort();
  }

  /** Cancels every engine request of this generation: their KV blocks are freed now. */
  cancel(): void {
    this.abort.abort();
  }

  /** Must be called when the HTTP request is done (drops the listener on the server's signal). */
  dispose(): void {
    this.ctx.cancelSignal?.removeEventListener('abort', this.onCancel);
  }

  private start(): AsyncGenerator<RequestOutput>[] {
    const { llm, metrics } = this.ctx;
    try {
      return this.req.prompts.map((ids, p) => {
        const rid = `${this.id}-${p}`;
        const stream = metrics.start(rid, () => llm.stream(ids, this.req.params, { signal: this.abort.signal, requestId: rid }));
        return metrics.observe(stream);
      });
    } catch (e) {
      this.abort.abort(); // the prompts queued before this one
      throw e;
    }
  }

  /** The response object of a non-streaming request. */
  async full(): Promise<object> {
    const iters = this.start();
    try {
      const outs = await Promise.all(
        iters.map(async (it) => {
          let last: RequestOutput | undefined;
          for await (const o of it) last = o;
          return last!;
        }),
      );
      if (outs.some(aborted)) throw cancelled();
      return fullResponse(this.req, this.ctx.tokenizer, this.id, this.created, outs);
    } catch (e) {
      this.abort.abort();
      throw e;
    }
  }

  /** Streams the response on `res` (the caller has taken the response over from fastify). Throws only before the headers are sent. */
  async stream(res: ServerResponse, hijack: () => void): Promise<void> {
    const iters = this.start();
    const firsts = await Promise.all(iters.map((it) => it.next())).catch(async (e) => {
      this.abort.abort();
      await Promise.all(iters.map((it) => it.return(undefined)));
      throw e;
    });
    hijack();
    try {
      if (!res.destroyed) await this.write(res, iters, firsts);
    } finally {
      await Promise.all(iters.map((it) => it.return(undefined)));
    }
  }

  private async write(res: ServerResponse, iters: AsyncGenerator<RequestOutput>[], firsts: IteratorResult<RequestOutput>[]): Promise<void> {
    res.on('error', () => {}); // a reset connection: 'close' follows and cancels the request
    res.writeHead(200, SSE_HEADERS);
    const { req, id, created } = this;
    const tok = this.ctx.tokenizer;
    const last: RequestOutput[] = [];
    let failure: ApiError | undefined;
    await Promise.all(
      iters.map(async (it, p) => {
        const tracker = new DeltaTracker(p * req.params.n, req.logprobs ? tok : undefined);
        try {
          for (let r = firsts[p]; !r.done; r = await it.next()) {
            last[p] = r.value;
            if (aborted(r.value)) failure ??= cancelled();
            const ds = tracker.deltas(r.value);
            if (ds.length && !(await send(res, chunk(req, tok, id, created, ds)))) break;
          }
        } catch (e) {
          const err = toApiError(e);
          if (err.status >= 500 && !(e instanceof ApiError)) this.ctx.log(e);
          failure ??= err;
          this.abort.abort();
        }
      }),
    );
    if (res.destroyed) return;
    if (failure) await send(res, failure.body());
    else if (req.includeUsage) await send(res, usageChunk(req, id, created, last));
    res.end('data: [DONE]\n\n');
  }
}

/** Writes one event; false once the client is gone. Waits while the socket's buffer is full. */
async function send(res: ServerResponse, data: object): Promise<boolean> {
  if (res.destroyed) return false;
  if (!res.write(`data: ${JSON.stringify(data)}\n\n`)) {
    await new Promise<void>((resolve) => {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
  }
  return !res.destroyed;
}

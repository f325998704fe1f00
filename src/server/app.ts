// The OpenAI-compatible HTTP server on fastify: createServer(llm, options) returns the fastify
// instance (listen on it; port 0 in tests). Routes:
//   POST /v1/completions, POST /v1/chat/completions   (stream: true for server-sent events)
//   GET  /v1/models, /v1/models/{name}, /health, /metrics
// With apiKey, /v1/* needs `Authorization: Bearer <key>` (401 otherwise); with maxQueue, a request
// that would make more than maxQueue requests wait for the scheduler is answered 429.

import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { LLM } from '../engine/llm.ts';
import { ApiError, toApiError } from './errors.ts';
import { type GenContext, Generation } from './generation.ts';
import { ServerMetrics } from './metrics.ts';
import { type GenRequest, type ModelInfo, parseChat, parseCompletion } from './validate.ts';

export interface ServerOptions {
  /** Names the model answers to in requests' `model`; responses report the first. */
  servedModelName: string | readonly string[];
  /** Required as a bearer token on /v1/* when set. */
  apiKey?: string;
  /** At most this many requests waiting for the scheduler; more are answered 429. Unbounded if unset. */
  maxQueue?: number;
  /** Aborting it cancels every request in flight (a graceful shutdown's grace period is over). */
  cancelSignal?: AbortSignal;
  /** Largest request body in bytes (default 32 MiB). */
  bodyLimit?: number;
  /** Shown as the model's `root` in /v1/models (the model directory). */
  root?: string;
  /** Where errors that are bugs (answered 500) are reported (default: stderr). */
  log?: (e: unknown) => void;
}

export type Server = FastifyInstance & { readonly metrics: ServerMetrics };

/** Constant-time key check (hashed first so that the lengths match). */
function sameKey(given: string, key: string): boolean {
  const h = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(given), h(key));
}

export function createServer(llm: LLM, o: ServerOptions): Server {
  const tokenizer = llm.engine.tokenizer;
  if (!tokenizer) throw new Error('createServer: this LLM has no tokenizer; serve a model directory, not dummy weights');
  const names = typeof o.servedModelName === 'string' ? [o.servedModelName] : [...o.servedModelName];
  if (!names.length) throw new Error('createServer: servedModelName is empty');
  // a KV cache smaller than the model's context caps it: refuse such requests now, not midway
  const blocks = llm.engine.blocks;
  const maxModelLen = Math.min(llm.engine.maxModelLen, (blocks.numBlocks - blocks.watermarkBlocks) * blocks.blockSize);
  const info: ModelInfo = { names, tokenizer, maxModelLen, vocabSize: llm.config.vocabSize, maxNumSeqs: llm.engine.scheduler.config.maxNumSeqs };
  const metrics = new ServerMetrics(llm.engine);
  const log = o.log ?? ((e: unknown) => console.error('parallm serve: internal error:', e));
  const ctx: GenContext = { llm, tokenizer, metrics, cancelSignal: o.cancelSignal, log };
  const created = Math.floor(Date.now() / 1000);

  const app = Fastify({ logger: false, bodyLimit: o.bodyLimit ?? 32 * 2 ** 20, return503OnClosing: true, forceCloseConnections: 'idle' });
  app.decorate('metrics', metrics);

  // a body is JSON whatever its content type says (curl -d sends form-urlencoded)
  // a "__proto__" or "constructor" key in a body is dropped when parsed (never set on an object):
  // the request then passes or fails validation on what is left, which names the field
  const json = app.getDefaultJsonParser('remove', 'remove');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, json);
  app.addContentTypeParser('*', { parseAs: 'string' }, json);

  app.addHook('onRequest', (request, reply, done) => {
    metrics.httpInFlight++;
    reply.raw.once('close', () => {
      metrics.httpInFlight--;
      metrics.httpRequest(request.method, request.routeOptions.url ?? 'unmatched', reply.raw.statusCode);
    });
    // by the matched route, not the raw URL (which may spell the same path differently)
    if (o.apiKey !== undefined && request.routeOptions.url?.startsWith('/v1/')) {
      const auth = request.headers.authorization;
      const given = auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined;
      if (given === undefined) return done(new ApiError(401, "You didn't provide an API key. Send it as the header 'Authorization: Bearer <key>'.", null, 'invalid_api_key'));
      if (!sameKey(given, o.apiKey)) return done(new ApiError(401, 'Incorrect API key provided.', null, 'invalid_api_key'));
    }
    done();
  });

  app.setErrorHandler((e, _request, reply) => {
    const err = toApiError(e);
    if (err.status >= 500 && !(e instanceof ApiError)) log(e);
    if (err.status === 429) reply.header('retry-after', '1');
    return reply.status(err.status).send(err.body());
  });
  app.setNotFoundHandler((request, reply) => reply.status(404).send(new ApiError(404, `Invalid URL (${request.method} ${request.url})`, null, 'not_found').body()));

  const checkQueue = (n: number) => {
    if (o.maxQueue === undefined) return;
    const s = llm.engine.scheduler;
    const waiting = s.waiting.length + s.swapped.length;
    if (waiting + n > o.maxQueue) {
      throw new ApiError(429, `The server is at capacity: ${waiting} requests are waiting to be scheduled (max queue ${o.maxQueue}). Retry later.`, null, 'rate_limit_exceeded');
    }
  };

  const generate = (parse: (body: unknown, m: ModelInfo) => GenRequest) => async (request: FastifyRequest, reply: FastifyReply) => {
    const req = parse(request.body, info);
    checkQueue(req.prompts.length);
    const gen = new Generation(ctx, req);
    // the client went away before the response was done: cancel, freeing the KV blocks now
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) gen.cancel();
    });
    try {
      if (!req.stream) return await gen.full();
      await gen.stream(reply.raw, () => reply.hijack());
      return reply;
    } finally {
      gen.dispose();
    }
  };
  app.post('/v1/completions', generate(parseCompletion));
  app.post('/v1/chat/completions', generate(parseChat));

  const card = (id: string) => ({ id, object: 'model', created, owned_by: 'parallm', root: o.root ?? names[0], parent: null, max_model_len: info.maxModelLen });
  app.get('/v1/models', async () => ({ object: 'list', data: names.map(card) }));
  app.get('/v1/models/*', async (request) => {
    const name = (request.params as { '*': string })['*'];
    if (!names.includes(name)) throw new ApiError(404, `The model \`${name}\` does not exist.`, 'model', 'model_not_found');
    return card(name);
  });
  app.get('/health', async (_request, reply) => reply.status(200).send());
  app.get('/metrics', async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.text()));
  return app as unknown as Server;
}

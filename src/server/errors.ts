// Errors the HTTP server answers with, in OpenAI's shape:
//   { "error": { "message": ..., "type": "invalid_request_error", "param": "top_p", "code": null } }
// Everything a client can cause (a bad field, a prompt too long for the model, a template that
// rejects the messages, a full queue) becomes an ApiError with a 4xx status; anything else is a
// bug in the server or the engine and answers 500 (and is logged).

import { RequestRejectedError } from '../engine/llm-engine.ts';
import { SamplingParamsError } from '../engine/sampling-params.ts';
import { TokenizerError } from '../tokenizer/errors.ts';

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type = status === 401 ? 'invalid_request_error' : status === 429 ? 'requests' : status >= 500 ? 'server_error' : 'invalid_request_error',
  ) {
    super(message);
  }

  body(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** A 400 naming the offending request field. */
export function badRequest(param: string | null, message: string, code: string | null = null): ApiError {
  return new ApiError(400, message, param, code);
}

/** The engine's SamplingParams names, back to the OpenAI request fields they came from. */
const OPENAI_NAMES: Record<string, string> = {
  n: 'n',
  temperature: 'temperature',
  topP: 'top_p',
  topK: 'top_k',
  minP: 'min_p',
  presencePenalty: 'presence_penalty',
  frequencyPenalty: 'frequency_penalty',
  repetitionPenalty: 'repetition_penalty',
  seed: 'seed',
  stop: 'stop',
  stopTokenIds: 'stop_token_ids',
  ignoreEos: 'ignore_eos',
  maxTokens: 'max_tokens',
  minTokens: 'min_tokens',
  logprobs: 'logprobs',
  promptLogprobs: 'prompt_logprobs',
  skipSpecialTokens: 'skip_special_tokens',
};

/**
 * Any error out of validation, tokenization or the engine as the ApiError to answer with.
 * `rename` overrides a field's OpenAI name where the endpoint spells it differently (chat's
 * top_logprobs, max_completion_tokens).
 */
export function toApiError(e: unknown, rename: Record<string, string> = {}): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof SamplingParamsError) {
    const param = rename[e.field] ?? OPENAI_NAMES[e.field] ?? e.field;
    const detail = e.message.startsWith(`${e.field}: `) ? e.message.slice(e.field.length + 2) : e.message;
    return badRequest(param, `${param}: ${detail}`);
  }
  if (e instanceof TokenizerError) {
    // the model directory's files were checked at startup: what is left is the chat template
    return badRequest('messages', e.message, e.code);
  }
  if (e instanceof RequestRejectedError) return badRequest(null, e.message, 'request_rejected');
  const fe = e as { statusCode?: number; code?: string; message?: string };
  if (typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    // fastify's own: bad JSON, empty body, body too large
    return new ApiError(fe.statusCode, fe.message ?? 'bad request', null, fe.code ?? null);
  }
  return new ApiError(500, `internal error: ${(e as Error)?.message ?? String(e)}`, null, null);
}

// Request validation: an OpenAI /v1/completions or /v1/chat/completions body, checked field by
// field and turned into what the engine takes (prompt token ids, SamplingParams). Every problem
// is a 400 naming the field in OpenAI's spelling; ranges are the engine's own (samplingParams()
// is run here, before anything is queued), and a prompt that does not fit the model's context
// is refused here too rather than left to the scheduler.

import { type SamplingParams, samplingParams } from '../engine/sampling-params.ts';
import type { ChatMessage, Tokenizer } from '../tokenizer/index.ts';
import { ApiError, badRequest, toApiError } from './errors.ts';

export interface ModelInfo {
  /** Names the server answers to; the first is the one it reports. */
  names: readonly string[];
  tokenizer: Tokenizer;
  maxModelLen: number;
  /** Rows of the embedding: prompt token ids must be below it. */
  vocabSize: number;
  /** Sequences the scheduler runs at once: n above it could never be scheduled. */
  maxNumSeqs: number;
}

/** One validated request: a prompt (or a batch of them, completions only) and how to sample. */
export interface GenRequest {
  kind: 'completion' | 'chat';
  model: string;
  prompts: number[][];
  params: SamplingParams;
  stream: boolean;
  includeUsage: boolean;
  /** Log-probs were asked for (completions: `logprobs` N; chat: `logprobs: true`). */
  logprobs: boolean;
}

type Body = Record<string, unknown>;

const show = (v: unknown) => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
};
/** null means "the default" throughout OpenAI's API. */
const get = (b: Body, k: string) => (b[k] === null ? undefined : b[k]);

function bool(b: Body, k: string): boolean | undefined {
  const v = get(b, k);
  if (v !== undefined && typeof v !== 'boolean') throw badRequest(k, `${k}: must be a boolean, got ${show(v)}`);
  return v as boolean | undefined;
}

/** A number for the engine to range-check; only the type is checked here. */
function num(b: Body, k: string): number | undefined {
  const v = get(b, k);
  if (v !== undefined && typeof v !== 'number') throw badRequest(k, `${k}: must be a number, got ${show(v)}`);
  return v as number | undefined;
}

function list(b: Body, k: string): unknown[] | undefined {
  const v = get(b, k);
  if (v !== undefined && !Array.isArray(v)) throw badRequest(k, `${k}: must be a list, got ${show(v)}`);
  return v as unknown[] | undefined;
}

/** Fields of OpenAI's API this server does not implement: refused rather than silently ignored. */
function refuseUnsupported(b: Body, chat: boolean): void {
  const no = (k: string, why: string) => {
    throw badRequest(k, `${k}: ${why}`);
  };
  if (get(b, 'echo') !== undefined && get(b, 'echo') !== false) no('echo', 'only false is supported (the prompt is not echoed)');
  const bestOf = get(b, 'best_of');
  if (bestOf !== undefined && bestOf !== 1 && bestOf !== (get(b, 'n') ?? 1)) no('best_of', 'is not supported; use n');
  if (get(b, 'suffix') !== undefined && get(b, 'suffix') !== '') no('suffix', 'is not supported (no fill-in-the-middle)');
  const bias = get(b, 'logit_bias');
  if (bias !== undefined && (typeof bias !== 'object' || Object.keys(bias as object).length > 0)) no('logit_bias', 'is not supported');
  if (get(b, 'prompt_logprobs') !== undefined) no('prompt_logprobs', 'is not supported by this server');
  if (get(b, 'include_stop_str_in_output') === true) no('include_stop_str_in_output', 'is not supported');
  if (!chat) return;
  const tools = get(b, 'tools');
  if (tools !== undefined && !(Array.isArray(tools) && tools.length === 0)) no('tools', 'tool calling is not supported by this server');
  if (get(b, 'functions') !== undefined) no('functions', 'function calling is not supported by this server');
  const choice = get(b, 'tool_choice');
  if (choice !== undefined && choice !== 'none' && choice !== 'auto') no('tool_choice', 'tool calling is not supported by this server');
  const fmt = get(b, 'response_format') as { type?: unknown } | undefined;
  if (fmt !== undefined && (typeof fmt !== 'object' || fmt.type !== 'text')) no('response_format', "only {\"type\": \"text\"} is supported (no structured output)");
  if (get(b, 'continue_final_message') === true) no('continue_final_message', 'is not supported');
  if (get(b, 'chat_template') !== undefined) no('chat_template', "a template in the request is not accepted; the model's own is used");
}

function checkModel(b: Body, m: ModelInfo): string {
  const v = get(b, 'model');
  if (v === undefined) return m.names[0];
  if (typeof v !== 'string') throw badRequest('model', `model: must be a string, got ${show(v)}`);
  if (!m.names.includes(v)) throw new ApiError(404, `The model \`${v}\` does not exist. This server serves ${m.names.map((n) => `\`${n}\``).join(', ')}.`, 'model', 'model_not_found');
  return m.names[0];
}

/** The fields both endpoints share, in the engine's names (unchecked ranges). */
function commonParams(b: Body): Partial<SamplingParams> {
  const stop = get(b, 'stop');
  if (stop !== undefined && typeof stop !== 'string' && !Array.isArray(stop)) throw badRequest('stop', `stop: must be a string or a list of strings, got ${show(stop)}`);
  return {
    n: num(b, 'n'),
    temperature: num(b, 'temperature'),
    topP: num(b, 'top_p'),
    topK: num(b, 'top_k'),
    minP: num(b, 'min_p'),
    presencePenalty: num(b, 'presence_penalty'),
    frequencyPenalty: num(b, 'frequency_penalty'),
    repetitionPenalty: num(b, 'repetition_penalty'),
    seed: num(b, 'seed'),
    stop: typeof stop === 'string' ? [stop] : (stop as string[] | undefined),
    stopTokenIds: list(b, 'stop_token_ids') as number[] | undefined,
    ignoreEos: bool(b, 'ignore_eos'),
    minTokens: num(b, 'min_tokens'),
    skipSpecialTokens: bool(b, 'skip_special_tokens'),
  };
}

function streamOptions(b: Body, stream: boolean): boolean {
  const so = get(b, 'stream_options');
  if (so === undefined) return false;
  if (typeof so !== 'object' || Array.isArray(so)) throw badRequest('stream_options', `stream_options: must be an object, got ${show(so)}`);
  if (!stream) throw badRequest('stream_options', 'stream_options: only allowed when stream is true');
  return bool(so as Body, 'include_usage') ?? false;
}

/** Sampling params checked, and the prompts checked against the model's context length. */
function finish(prompts: number[][], p: Partial<SamplingParams>, m: ModelInfo, what: 'prompt' | 'messages', rename: Record<string, string>): SamplingParams {
  let params: SamplingParams;
  try {
    params = samplingParams(p);
  } catch (e) {
    throw toApiError(e, rename);
  }
  if (params.n > m.maxNumSeqs) throw badRequest('n', `n: ${params.n} sequences can never run at once; this server runs at most ${m.maxNumSeqs} (--max-num-seqs)`);
  for (const ids of prompts) {
    if (ids.length === 0) throw badRequest(what, `${what}: is empty (it encodes to no tokens)`);
    const total = ids.length + params.maxTokens;
    if (total > m.maxModelLen) {
      const tooLong = ids.length >= m.maxModelLen;
      const maxName = rename.maxTokens ?? 'max_tokens';
      throw badRequest(
        tooLong ? what : maxName,
        `This model's maximum context length is ${m.maxModelLen} tokens. However, you requested ${total} tokens (${ids.length} in the ${what}, ${params.maxTokens} in the completion). Please reduce the length of the ${what}${tooLong ? '' : ` or ${maxName}`}.`,
        'context_length_exceeded',
      );
    }
  }
  return params;
}

function asBody(body: unknown): Body {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest(null, `the request body must be a JSON object, got ${show(body)}`);
  return body as Body;
}

function tokenIds(v: unknown[], m: ModelInfo, param: string): number[] {
  for (const id of v) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= m.vocabSize) {
      throw badRequest(param, `${param}: token ids must be integers in [0, ${m.vocabSize}), got ${show(id)}`);
    }
  }
  return v as number[];
}

/** POST /v1/completions: prompt is a string, a list of strings, a list of token ids, or a list of such lists. */
export function parseCompletion(raw: unknown, m: ModelInfo): GenRequest {
  const b = asBody(raw);
  const model = checkModel(b, m);
  refuseUnsupported(b, false);
  const prompt = get(b, 'prompt');
  const bad = () => badRequest('prompt', `prompt: must be a string, a list of strings, a list of token ids or a list of lists of token ids, got ${show(prompt)}`);
  let prompts: number[][];
  if (typeof prompt === 'string') prompts = [m.tokenizer.encode(prompt)];
  else if (!Array.isArray(prompt) || prompt.length === 0) throw bad();
  else if (prompt.every((x) => typeof x === 'string')) prompts = prompt.map((s) => m.tokenizer.encode(s as string));
  else if (prompt.every((x) => typeof x === 'number')) prompts = [tokenIds(prompt, m, 'prompt')];
  else if (prompt.every((x) => Array.isArray(x))) prompts = prompt.map((x) => tokenIds(x as unknown[], m, 'prompt'));
  else throw bad();
  const stream = bool(b, 'stream') ?? false;
  const lp = num(b, 'logprobs');
  const params = finish(prompts, { ...commonParams(b), maxTokens: num(b, 'max_tokens') ?? 16, logprobs: lp }, m, 'prompt', {});
  return { kind: 'completion', model, prompts, params, stream, includeUsage: streamOptions(b, stream), logprobs: lp !== undefined };
}

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool']);

/** One message's content: a string, null, or a list of text parts (joined with newlines, as vLLM does). */
function content(v: unknown, i: number): string | null {
  const at = `messages[${i}].content`;
  if (v === undefined || v === null || typeof v === 'string') return (v as string | undefined) ?? null;
  if (!Array.isArray(v)) throw badRequest('messages', `${at}: must be a string or a list of content parts, got ${show(v)}`);
  return v
    .map((part, j) => {
      const p = part as { type?: unknown; text?: unknown } | null;
      if (typeof p !== 'object' || p === null) throw badRequest('messages', `${at}[${j}]: must be a content part object, got ${show(part)}`);
      if (p.type !== 'text') throw badRequest('messages', `${at}[${j}].type: ${show(p.type)} is not supported; this model takes text parts only`);
      if (typeof p.text !== 'string') throw badRequest('messages', `${at}[${j}].text: must be a string`);
      return p.text;
    })
    .join('\n');
}

function messages(b: Body): ChatMessage[] {
  const v = get(b, 'messages');
  if (!Array.isArray(v) || v.length === 0) throw badRequest('messages', `messages: must be a non-empty list of messages, got ${show(v)}`);
  return v.map((msg, i) => {
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw badRequest('messages', `messages[${i}]: must be an object with role and content, got ${show(msg)}`);
    const role = (msg as Body).role;
    if (typeof role !== 'string' || !ROLES.has(role)) throw badRequest('messages', `messages[${i}].role: must be one of ${[...ROLES].join(', ')}, got ${show(role)}`);
    return { ...(msg as Body), role, content: content((msg as Body).content, i) };
  });
}

/** POST /v1/chat/completions: messages rendered with the model's chat template. */
export function parseChat(raw: unknown, m: ModelInfo): GenRequest {
  const b = asBody(raw);
  const model = checkModel(b, m);
  refuseUnsupported(b, true);
  const msgs = messages(b);
  const kwargs = get(b, 'chat_template_kwargs');
  if (kwargs !== undefined && (typeof kwargs !== 'object' || Array.isArray(kwargs))) throw badRequest('chat_template_kwargs', 'chat_template_kwargs: must be an object');
  const addGenerationPrompt = bool(b, 'add_generation_prompt') ?? true;
  let ids: number[];
  try {
    ids = m.tokenizer.applyChatTemplate(msgs, { addGenerationPrompt, tokenize: true, kwargs: kwargs as Record<string, unknown> | undefined });
  } catch (e) {
    throw toApiError(e);
  }
  const stream = bool(b, 'stream') ?? false;
  const logprobs = bool(b, 'logprobs') ?? false;
  const top = num(b, 'top_logprobs');
  if (top !== undefined && !logprobs) throw badRequest('top_logprobs', 'top_logprobs: needs logprobs: true');
  const maxName = get(b, 'max_completion_tokens') !== undefined ? 'max_completion_tokens' : 'max_tokens';
  // no max_tokens: up to the end of the context, as vLLM
  const maxTokens = num(b, maxName) ?? Math.max(1, m.maxModelLen - ids.length);
  const rename = { maxTokens: maxName, logprobs: 'top_logprobs' };
  const params = finish([ids], { ...commonParams(b), maxTokens, logprobs: logprobs ? (top ?? 0) : undefined }, m, 'messages', rename);
  return { kind: 'chat', model, prompts: [ids], params, stream, includeUsage: streamOptions(b, stream), logprobs };
}

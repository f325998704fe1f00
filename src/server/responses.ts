// OpenAI's response shapes, built from the engine's RequestOutputs: completions and chat
// completions, whole and as stream chunks; usage; the two log-prob shapes (the legacy one of
// /v1/completions and chat's `content` list). Choice `index` is promptIndex * n + sequence index.

import type { RequestOutput, SeqOutput, TokenLogprob } from '../engine/outputs.ts';
import type { Tokenizer } from '../tokenizer/index.ts';
import type { GenRequest } from './validate.ts';

export type FinishReason = 'stop' | 'length' | null;

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

export interface ChatLogprobs {
  content: ChatTokenLogprob[];
  refusal: null;
}

/** What one choice gained since the last chunk. */
export interface Delta {
  index: number;
  text: string;
  logprobs?: TokenLogprob[];
  /** The text offset of this delta's first token (legacy log-probs). */
  offset: number;
  finishReason: FinishReason;
  /** The first delta of the choice (chat sends the role in it). */
  first: boolean;
}

/** 'abort' (a cancelled request) is no OpenAI finish reason: the stream code reports it as an error. */
const finishReason = (s: SeqOutput): FinishReason => (s.finishReason === 'stop' || s.finishReason === 'length' ? s.finishReason : null);

export function usage(outs: readonly RequestOutput[]): Usage {
  const prompt = outs.reduce((n, o) => n + o.promptTokenIds.length, 0);
  const completion = outs.reduce((n, o) => n + o.outputs.reduce((k, s) => k + s.tokenIds.length, 0), 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** Token text as vLLM shows it: the token decoded alone (a partial UTF-8 sequence shows as U+FFFD). */
const tokenText = (tok: Tokenizer, id: number) => tok.decode([id], { skipSpecialTokens: false });
const utf8 = (s: string) => [...Buffer.from(s, 'utf8')];

export function completionLogprobs(tok: Tokenizer, lps: readonly TokenLogprob[], offset: number): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  for (const lp of lps) {
    const text = tokenText(tok, lp.id);
    out.tokens.push(text);
    out.token_logprobs.push(lp.logprob);
    const top: Record<string, number> = {};
    for (const t of lp.top) top[tokenText(tok, t.id)] ??= t.logprob;
    top[text] ??= lp.logprob;
    out.top_logprobs.push(top);
    out.text_offset.push(offset);
    offset += text.length;
  }
  return out;
}

export function chatLogprobs(tok: Tokenizer, lps: readonly TokenLogprob[]): ChatLogprobs {
  return {
    content: lps.map((lp) => {
      const text = tokenText(tok, lp.id);
      return {
        token: text,
        logprob: lp.logprob,
        bytes: utf8(text),
        top_logprobs: lp.top.map((t) => {
          const s = tokenText(tok, t.id);
          return { token: s, logprob: t.logprob, bytes: utf8(s) };
        }),
      };
    }),
    refusal: null,
  };
}

/** The whole response of a non-streaming request: one RequestOutput per prompt, in prompt order. */
export function fullResponse(req: GenRequest, tok: Tokenizer, id: string, created: number, outs: readonly RequestOutput[]): object {
  const n = req.params.n;
  const choices = outs.flatMap((o, p) =>
    o.outputs.map((s) => {
      const index = p * n + s.index;
      const lps = req.logprobs ? (s.logprobs ?? []) : undefined;
      if (req.kind === 'completion') {
        return { index, text: s.text, logprobs: lps ? completionLogprobs(tok, lps, 0) : null, finish_reason: finishReason(s) };
      }
      return { index, message: { role: 'assistant', content: s.text, refusal: null }, logprobs: lps ? chatLogprobs(tok, lps) : null, finish_reason: finishReason(s) };
    }),
  );
  const object = req.kind === 'completion' ? 'text_completion' : 'chat.completion';
  return { id, object, created, model: req.model, choices, usage: usage(outs), system_fingerprint: null };
}

/** One stream chunk holding these choices' deltas. */
export function chunk(req: GenRequest, tok: Tokenizer, id: string, created: number, deltas: readonly Delta[]): object {
  const choices = deltas.map((d) => {
    if (req.kind === 'completion') {
      return { index: d.index, text: d.text, logprobs: d.logprobs ? completionLogprobs(tok, d.logprobs, d.offset) : null, finish_reason: d.finishReason };
    }
    const delta: { role?: string; content?: string } = {};
    if (d.first) delta.role = 'assistant';
    if (d.text || d.first) delta.content = d.text;
    return { index: d.index, delta, logprobs: d.logprobs ? chatLogprobs(tok, d.logprobs) : null, finish_reason: d.finishReason };
  });
  const object = req.kind === 'completion' ? 'text_completion' : 'chat.completion.chunk';
  const c: Record<string, unknown> = { id, object, created, model: req.model, choices, system_fingerprint: null };
  if (req.includeUsage) c.usage = null;
  return c;
}

/** The last chunk with stream_options.include_usage: no choices, the usage. */
export function usageChunk(req: GenRequest, id: string, created: number, outs: readonly RequestOutput[]): object {
  const object = req.kind === 'completion' ? 'text_completion' : 'chat.completion.chunk';
  return { id, object, created, model: req.model, choices: [], usage: usage(outs), system_fingerprint: null };
}

/** Turns one prompt's cumulative outputs into per-choice deltas. */
export class DeltaTracker {
  private sent: { chars: number; tokens: number; offset: number; done: boolean; started: boolean }[] = [];

  constructor(
    private readonly base: number,
    /** Given when log-probs were asked for. */
    private readonly tok?: Tokenizer,
  ) {}

  deltas(out: RequestOutput): Delta[] {
    const ds: Delta[] = [];
    for (const s of out.outputs) {
      const st = (this.sent[s.index] ??= { chars: 0, tokens: 0, offset: 0, done: false, started: false });
      if (st.done) continue;
      const text = s.text.slice(st.chars);
      const lps = this.tok ? (s.logprobs ?? []).slice(st.tokens) : undefined;
      const fr = finishReason(s);
      st.done = s.finishReason !== undefined;
      if (!text && !lps?.length && !fr) continue;
      ds.push({ index: this.base + s.index, text, logprobs: lps, offset: st.offset, finishReason: fr, first: !st.started });
      st.chars = s.text.length;
      st.tokens += lps?.length ?? 0;
      for (const lp of lps ?? []) st.offset += tokenText(this.tok!, lp.id).length;
      st.started = true;
    }
    return ds;
  }
}

// Sampling parameters, as vLLM names and defines them, with validation that says which field
// is wrong and why (the HTTP server turns a SamplingParamsError into a 400 naming the field).

export interface SamplingParams {
  /** Output sequences per request; they share the prompt's KV blocks. */
  n: number;
  /** 0 = greedy. */
  temperature: number;
  /** Nucleus sampling: keep the smallest set of tokens whose probability reaches topP (1 = off). */
  topP: number;
  /** Keep the topK most likely tokens (0 or -1 = off). */
  topK: number;
  /** Keep tokens whose probability is at least minP times the largest (0 = off). */
  minP: number;
  presencePenalty: number;
  frequencyPenalty: number;
  /** > 1 discourages tokens already in the prompt or output (1 = off). */
  repetitionPenalty: number;
  /** Seeds this request's draws: the same seed gives the same output whatever the batch. */
  seed?: number;
  /** Generation stops when the text contains one of these (not included in the output). */
  stop: string[];
  /** Generation stops at these token ids (in addition to EOS unless ignoreEos). */
  stopTokenIds: number[];
  ignoreEos: boolean;
  maxTokens: number;
  /** EOS and stop ids are held back until this many tokens are out. */
  minTokens: number;
  /** Log-probabilities of the sampled token and this many top alternatives per step (undefined = none). */
  logprobs?: number;
  /** The same for every prompt token. */
  promptLogprobs?: number;
  skipSpecialTokens: boolean;
}

export const DEFAULT_SAMPLING: Readonly<SamplingParams> = {
  n: 1,
  temperature: 1,
  topP: 1,
  topK: 0,
  minP: 0,
  presencePenalty: 0,
  frequencyPenalty: 0,
  repetitionPenalty: 1,
  stop: [],
  stopTokenIds: [],
  ignoreEos: false,
  maxTokens: 16,
  minTokens: 0,
  skipSpecialTokens: true,
};

/** A request's sampling parameters are out of range; `field` names the offending one. */
export class SamplingParamsError extends Error {
  override name = 'SamplingParamsError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

const MAX_LOGPROBS = 20;

/** Defaults filled in and every field checked. */
export function samplingParams(p: Partial<SamplingParams> = {}): SamplingParams {
  const s: SamplingParams = { ...DEFAULT_SAMPLING, ...stripUndefined(p) };
  const int = (f: keyof SamplingParams, v: unknown, min: number, max = Infinity) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new SamplingParamsError(f, `must be an integer in [${min}, ${max === Infinity ? '∞' : max}], got ${JSON.stringify(v)}`);
    }
  };
  const num = (f: keyof SamplingParams, v: unknown, ok: (x: number) => boolean, range: string) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new SamplingParamsError(f, `must be ${range}, got ${JSON.stringify(v)}`);
  };
  int('n', s.n, 1, 128);
  num('temperature', s.temperature, (x) => x >= 0, '>= 0');
  num('topP', s.topP, (x) => x > 0 && x <= 1, 'in (0, 1]');
  int('topK', s.topK, -1);
  num('minP', s.minP, (x) => x >= 0 && x <= 1, 'in [0, 1]');
  num('presencePenalty', s.presencePenalty, (x) => x >= -2 && x <= 2, 'in [-2, 2]');
  num('frequencyPenalty', s.frequencyPenalty, (x) => x >= -2 && x <= 2, 'in [-2, 2]');
  num('repetitionPenalty', s.repetitionPenalty, (x) => x > 0 && x <= 10, 'in (0, 10]');
  if (s.seed !== undefined) int('seed', s.seed, 0, Number.MAX_SAFE_INTEGER);
  if (!Array.isArray(s.stop) || s.stop.some((x) => typeof x !== 'string' || x.length === 0)) throw new SamplingParamsError('stop', 'must be a list of non-empty strings');
  if (!Array.isArray(s.stopTokenIds) || s.stopTokenIds.some((x) => !Number.isInteger(x) || x < 0)) throw new SamplingParamsError('stopTokenIds', 'must be a list of token ids');
  int('maxTokens', s.maxTokens, 1);
  int('minTokens', s.minTokens, 0, s.maxTokens);
  if (s.logprobs !== undefined) int('logprobs', s.logprobs, 0, MAX_LOGPROBS);
  if (s.promptLogprobs !== undefined) int('promptLogprobs', s.promptLogprobs, 0, MAX_LOGPROBS);
  // top-k -1 is vLLM's "off"; the device kernel takes 0
  if (s.topK < 0) s.topK = 0;
  return s;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Whether this request needs the penalty pass on the device at this step. */
export function needsPenalties(p: SamplingParams, numOutputTokens: number): boolean {
  return p.presencePenalty !== 0 || p.frequencyPenalty !== 0 || p.repetitionPenalty !== 1 || numOutputTokens < p.minTokens;
}

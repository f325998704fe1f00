// Model configs: a Hugging Face config.json read into a typed ModelConfig, checked against what
// this engine runs (LLaMA-family decoders: RMSNorm, rotary attention with GQA, SiLU-gated MLP).
// Anything the model code would silently get wrong (another activation, a rope type we do not
// compute, a sliding window that actually limits attention) is rejected here, by field name.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { WeightDType } from '../device/ops.ts';

export { PRESETS, type PresetName } from './presets.ts';
export { ropeInvFreq } from './rope.ts';

export const ARCHITECTURES = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM'] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

/** Rotary scaling, as named by HF's `rope_scaling.rope_type` (`type` in older configs). */
export type RopeScaling =
  | { type: 'none' }
  /** Position interpolation: every inverse frequency divided by factor. */
  | { type: 'linear'; factor: number }
  /** Llama 3.1: low frequencies divided by factor, high kept, a smooth ramp between. */
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

export interface ModelConfig {
  architecture: Architecture;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  /** Key/value heads (GQA): numHeads for MHA (Llama-2 7B/13B), fewer for Llama-3, Mistral, Qwen2. */
  numKvHeads: number;
  /** head_dim when the config gives it (Mistral-Nemo: 128 with hidden 5120 / 32 heads), else hidden / heads. */
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  maxPositionEmbeddings: number;
  /** lm_head shares the embedding table (no lm_head.weight is loaded). */
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (always for Qwen2; Llama's attention_bias). */
  attentionBias: boolean;
  /** o_proj carries a bias (Llama with attention_bias only; Qwen2's o_proj has none). */
  oProjBias: boolean;
  /** The dtype the checkpoint says it was saved in (torch_dtype / dtype); undefined when absent. */
  torchDtype: WeightDType | undefined;
  bosTokenId: number | undefined;
  /** eos_token_id may be one id or several (Llama-3.1-Instruct lists three). */
  eosTokenIds: number[];
}

/** A config.json this engine cannot run, or a field with a value it does not support. */
export class ModelConfigError extends Error {
  override name = 'ModelConfigError';
  constructor(
    readonly field: string,
    detail: string,
    readonly supported: readonly string[] = [],
    readonly source = 'config.json',
  ) {
    super(`${source}: ${field}: ${detail}${supported.length ? `; supported: ${supported.join(', ')}` : ''}`);
  }
}

export interface ParseOptions {
  /** File name for error messages. */
  source?: string;
  /**
   * The longest sequence the engine will run (default max_position_embeddings). A sliding
   * window at least this long never limits attention, so Mistral-7B-v0.1 (window 4096) runs
   * with maxModelLen <= 4096.
   */
  maxModelLen?: number;
}

const ROPE_TYPES = ['none (null or "default")', 'linear', 'llama3'];
const DTYPES: Record<string, WeightDType> = { float32: 'f32', float16: 'f16', bfloat16: 'bf16', half: 'f16', float: 'f32' };

/** Defaults of HF's config classes for fields a config.json may leave out. */
const DEFAULTS: Record<Architecture, { maxPos: number; eps: number; slidingWindow: number | null }> = {
  LlamaForCausalLM: { maxPos: 2048, eps: 1e-6, slidingWindow: null },
  MistralForCausalLM: { maxPos: 4096 * 32, eps: 1e-6, slidingWindow: 4096 },
  Qwen2ForCausalLM: { maxPos: 32768, eps: 1e-6, slidingWindow: 4096 },
};
const MODEL_TYPES: Record<string, Architecture> = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' };

/** Reads and parses `<modelDir>/config.json`. */
export async function loadConfig(modelDir: string, opts: ParseOptions = {}): Promise<ModelConfig> {
  const path = join(modelDir, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ModelConfigError('config.json', `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? e}): is this a Hugging Face model directory?`, [], path);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ModelConfigError('config.json', `not valid JSON (${(e as Error).message})`, [], path);
  }
  return parseConfig(json, { source: path, ...opts });
}

/** Parses the object of a config.json. Throws ModelConfigError naming the first bad field. */
export function parseConfig(json: unknown, opts: ParseOptions = {}): ModelConfig {
  const source = opts.source ?? 'config.json';
  const fail = (field: string, detail: string, supported: readonly string[] = []): never => {
    throw new ModelConfigError(field, detail, supported, source);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('(root)', 'must be a JSON object');
  const c = json as Record<string, unknown>;
  const r = new Reader(c, fail);

  const architecture = readArchitecture(c, fail);
  const d = DEFAULTS[architecture];

  if (c.quantization_config != null) {
    fail('quantization_config', 'quantized checkpoints (GPTQ, AWQ, bitsandbytes, ...) are not supported', ['f32, f16 or bf16 weights']);
  }
  const act = r.str('hidden_act', 'silu');
  if (act !== 'silu' && act !== 'swish') fail('hidden_act', `'${act}' is not supported`, ['silu']);
  if (r.bool('mlp_bias', false)) fail('mlp_bias', 'biases on gate/up/down_proj are not supported', ['false']);

  const hiddenSize = r.int('hidden_size');
  const numHeads = r.int('num_attention_heads');
  const numKvHeads = r.int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) fail('num_key_value_heads', `${numKvHeads} does not divide num_attention_heads ${numHeads}`);
  let headDim: number;
  if (c.head_dim != null) headDim = r.int('head_dim');
  else {
    if (hiddenSize % numHeads !== 0) fail('num_attention_heads', `${numHeads} does not divide hidden_size ${hiddenSize} and head_dim is not given`);
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 2 !== 0) fail('head_dim', `${headDim} must be even for rotary embeddings`);

  // transformers 5 moves rope_theta and rope_scaling into one rope_parameters object
  const ropeParams = c.rope_parameters;
  if (ropeParams != null && (typeof ropeParams !== 'object' || Array.isArray(ropeParams))) fail('rope_parameters', 'must be an object');
  const rp = ropeParams as Record<string, unknown> | undefined;
  // a per-layer-type form ({full_attention: {...}, ...}) would otherwise read as default rope
  if (rp && rp.rope_type === undefined && rp.type === undefined && rp.rope_theta === undefined) fail('rope_parameters', 'has no rope_type or rope_theta', ROPE_TYPES);
  const thetaField = rp?.rope_theta !== undefined ? 'rope_parameters.rope_theta' : 'rope_theta';
  const ropeTheta = rp?.rope_theta !== undefined ? new Reader(rp, fail, 'rope_parameters.').num('rope_theta') : r.num('rope_theta', 10000);
  if (!(ropeTheta > 1)) fail(thetaField, `must be > 1, got ${ropeTheta}`);
  const partial = rp?.partial_rotary_factor ?? c.partial_rotary_factor;
  if (partial != null && partial !== 1) fail('partial_rotary_factor', `rotating ${JSON.stringify(partial)} of each head is not supported`, ['1']);
  const maxPositionEmbeddings = r.int('max_position_embeddings', d.maxPos);
  const ropeScaling = rp ? readRopeScaling(rp, 'rope_parameters', fail) : readRopeScaling(c.rope_scaling, 'rope_scaling', fail);

  const maxLen = opts.maxModelLen ?? maxPositionEmbeddings;
  if (!Number.isSafeInteger(maxLen) || maxLen < 1) fail('(max model length)', `must be a positive integer, got ${maxLen}`);
  checkSlidingWindow(architecture, c, r, d.slidingWindow, maxLen, fail);

  const qwen2 = architecture === 'Qwen2ForCausalLM';
  const llamaBias = architecture === 'LlamaForCausalLM' && r.bool('attention_bias', false);
  const dtypeName = c.dtype ?? c.torch_dtype; // transformers 5 writes `dtype`
  let torchDtype: WeightDType | undefined;
  if (dtypeName != null) {
    const field = c.dtype != null ? 'dtype' : 'torch_dtype';
    if (typeof dtypeName !== 'string' || !Object.hasOwn(DTYPES, dtypeName)) fail(field, `${JSON.stringify(dtypeName)} is not supported`, ['float32', 'float16', 'bfloat16']);
    torchDtype = DTYPES[dtypeName as string];
  }

  return {
    architecture,
    vocabSize: r.int('vocab_size'),
    hiddenSize,
    intermediateSize: r.int('intermediate_size'),
    numLayers: r.int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: r.positive('rms_norm_eps', d.eps),
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings,
    tieWordEmbeddings: r.bool('tie_word_embeddings', false),
    attentionBias: qwen2 || llamaBias,
    oProjBias: llamaBias,
    torchDtype,
    bosTokenId: r.tokenIds('bos_token_id')[0],
    eosTokenIds: r.tokenIds('eos_token_id'),
  };
}

function readArchitecture(c: Record<string, unknown>, fail: (f: string, d: string, s?: readonly string[]) => never): Architecture {
  const archs = c.architectures;
  if (archs != null) {
    if (!Array.isArray(archs) || archs.length === 0 || typeof archs[0] !== 'string') fail('architectures', 'must be a non-empty list of class names');
    const name = (archs as string[])[0];
    if (!(ARCHITECTURES as readonly string[]).includes(name)) fail('architectures', `'${name}' is not supported`, ARCHITECTURES);
    return name as Architecture;
  }
  // configs written by hand often carry only model_type
  const mt = c.model_type;
  if (typeof mt === 'string' && Object.hasOwn(MODEL_TYPES, mt)) return MODEL_TYPES[mt];
  return fail(mt == null ? 'architectures' : 'model_type', mt == null ? 'missing (and no model_type)' : `'${mt}' is not supported`, ARCHITECTURES);
}

function readRopeScaling(v: unknown, field: string, fail: (f: string, d: string, s?: readonly string[]) => never): RopeScaling {
  if (v == null) return { type: 'none' };
  if (typeof v !== 'object' || Array.isArray(v)) return fail(field, 'must be an object or null', ROPE_TYPES);
  const o = v as Record<string, unknown>;
  const type = o.rope_type ?? o.type ?? 'default';
  const r = new Reader(o, fail, `${field}.`);
  switch (type) {
    case 'default':
      return { type: 'none' };
    case 'linear': {
      const factor = r.positive('factor');
      return { type: 'linear', factor };
    }
    case 'llama3': {
      const s = {
        type: 'llama3' as const,
        factor: r.positive('factor'),
        lowFreqFactor: r.positive('low_freq_factor'),
        highFreqFactor: r.positive('high_freq_factor'),
        originalMaxPositionEmbeddings: r.int('original_max_position_embeddings'),
      };
      // the smooth ramp divides by (high - low): equal factors leave it undefined
      if (!(s.highFreqFactor > s.lowFreqFactor)) fail(`${field}.high_freq_factor`, `must be greater than low_freq_factor (${s.highFreqFactor} <= ${s.lowFreqFactor})`);
      return s;
    }
    default:
      return fail(`${field}.${o.rope_type !== undefined ? 'rope_type' : 'type'}`, `'${String(type)}' is not supported`, ROPE_TYPES);
  }
}

/**
 * A sliding window shorter than the longest sequence changes attention, which the model code
 * does not do: reject it. A window at least maxLen long is full attention and is ignored.
 */
function checkSlidingWindow(arch: Architecture, c: Record<string, unknown>, r: Reader, dflt: number | null, maxLen: number, fail: (f: string, d: string, s?: readonly string[]) => never): void {
  if (arch === 'LlamaForCausalLM') return;
  // an explicit null means no window; an absent field takes the config class's default
  const window = c.sliding_window === null ? 0 : r.int('sliding_window', dflt ?? 0, true);
  if (window === 0 || window >= maxLen) return;
  if (arch === 'Qwen2ForCausalLM') {
    // Qwen2 uses the window only with use_sliding_window, and then only in the layers marked
    // 'sliding_attention' in layer_types (transformers 5) or from layer max_window_layers on
    if (!r.bool('use_sliding_window', false)) return;
    const types = c.layer_types;
    const sliding = Array.isArray(types) ? types.includes('sliding_attention') : r.int('max_window_layers', 28, true) < r.int('num_hidden_layers');
    if (!sliding) return;
  }
  fail('sliding_window', `a window of ${window} tokens limits attention for sequences up to ${maxLen} tokens; sliding-window attention is not supported (run with a max model length <= ${window})`, ['null', `>= ${maxLen}`]);
}

/** Typed field reads with HF defaults; every failure names the field. */
class Reader {
  constructor(
    private c: Record<string, unknown>,
    private fail: (field: string, detail: string, supported?: readonly string[]) => never,
    private prefix = '',
  ) {}

  private get(key: string): unknown {
    const v = this.c[key];
    return v === null ? undefined : v;
  }

  /** A positive integer (or >= 0 with allowZero); a missing field takes dflt, or fails without one. */
  int(key: string, dflt?: number, allowZero = false): number {
    const v = this.get(key) ?? dflt;
    if (v === undefined) return this.fail(this.prefix + key, 'missing');
    if (!Number.isSafeInteger(v) || (v as number) < (allowZero ? 0 : 1)) this.fail(this.prefix + key, `must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${JSON.stringify(v)}`);
    return v as number;
  }

  num(key: string, dflt?: number): number {
    const v = this.get(key) ?? dflt;
    if (v === undefined) return this.fail(this.prefix + key, 'missing');
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(this.prefix + key, `must be a number, got ${JSON.stringify(v)}`);
    return v as number;
  }

  positive(key: string, dflt?: number): number {
    const v = this.num(key, dflt);
    if (!(v > 0)) this.fail(this.prefix + key, `must be > 0, got ${v}`);
    return v;
  }

  bool(key: string, dflt: boolean): boolean {
    const v = this.get(key) ?? dflt;
    if (typeof v !== 'boolean') this.fail(this.prefix + key, `must be true or false, got ${JSON.stringify(v)}`);
    return v as boolean;
  }

  str(key: string, dflt: string): string {
    const v = this.get(key) ?? dflt;
    if (typeof v !== 'string') this.fail(this.prefix + key, `must be a string, got ${JSON.stringify(v)}`);
    return v as string;
  }

  /** A token id, a list of them, or absent. */
  tokenIds(key: string): number[] {
    const v = this.get(key);
    if (v === undefined) return [];
    const ids = Array.isArray(v) ? v : [v];
    if (!ids.every((x) => Number.isSafeInteger(x) && x >= 0)) this.fail(this.prefix + key, `must be a token id or a list of them, got ${JSON.stringify(v)}`);
    return ids as number[];
  }
}

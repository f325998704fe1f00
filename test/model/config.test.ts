// config.json parsing: the published configs of each supported family, the transformers-5 form
// written by save_pretrained (the fixtures), and every rejection naming its field.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelConfigError, PRESETS, loadConfig, parseConfig } from '../../src/model/config.ts';
import { numel } from '../../src/device/dtype.ts';
import { weightSpecs } from '../../src/model/weights.ts';

// As published on the Hugging Face hub (fields not read by parallm trimmed where long).
const LLAMA2_7B = {
  architectures: ['LlamaForCausalLM'],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 11008,
  max_position_embeddings: 4096,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 32,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  tie_word_embeddings: false,
  torch_dtype: 'float16',
  transformers_version: '4.31.0.dev0',
  use_cache: true,
  vocab_size: 32000,
};

const LLAMA31_8B_INSTRUCT = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  hidden_act: 'silu',
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 14336,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.42.3',
  use_cache: true,
  vocab_size: 128256,
};

const MISTRAL_7B_V01 = {
  architectures: ['MistralForCausalLM'],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 14336,
  max_position_embeddings: 32768,
  model_type: 'mistral',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  sliding_window: 4096,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.34.0.dev0',
  use_cache: true,
  vocab_size: 32000,
};
const MISTRAL_7B_V02 = { ...MISTRAL_7B_V01, rope_theta: 1000000.0, sliding_window: null, transformers_version: '4.36.0' };
const MISTRAL_NEMO = { ...MISTRAL_7B_V02, hidden_size: 5120, head_dim: 128, num_hidden_layers: 40, max_position_embeddings: 1024000, vocab_size: 131072 };

const QWEN25_05B = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  hidden_act: 'silu',
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 21,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.43.1',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

function rejects(json: unknown, field: string, opts = {}): ModelConfigError {
  try {
    parseConfig(json, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(ModelConfigError);
    const err = e as ModelConfigError;
    expect(err.field).toBe(field);
    expect(err.message).toContain(field);
    return err;
  }
  throw new Error(`expected ${field} to be rejected`);
}

describe('parseConfig: supported families', () => {
  it('Llama-2-7B: multi-head attention, no rope scaling, f16', () => {
    expect(parseConfig(LLAMA2_7B)).toEqual(PRESETS['llama-2-7b']);
  });

  it('Llama-3.1-8B-Instruct: GQA, llama3 rope scaling, several eos ids', () => {
    const c = parseConfig(LLAMA31_8B_INSTRUCT);
    expect(c).toMatchObject({ numHeads: 32, numKvHeads: 8, headDim: 128, ropeTheta: 500000, maxPositionEmbeddings: 131072, torchDtype: 'bf16', bosTokenId: 128000 });
    expect(c.eosTokenIds).toEqual([128001, 128008, 128009]);
    expect(c.ropeScaling).toEqual({ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
  });

  it('Mistral-7B v0.2 (no window) and Mistral-Nemo (head_dim given, not hidden/heads)', () => {
    expect(parseConfig(MISTRAL_7B_V02)).toMatchObject({ architecture: 'MistralForCausalLM', numKvHeads: 8, headDim: 128, ropeTheta: 1e6, attentionBias: false });
    expect(parseConfig(MISTRAL_NEMO)).toMatchObject({ hiddenSize: 5120, numHeads: 32, headDim: 128 });
  });

  it('Mistral-7B v0.1: a 4096 window over 32768 positions is rejected, accepted for sequences <= 4096', () => {
    const err = rejects(MISTRAL_7B_V01, 'sliding_window');
    expect(err.message).toMatch(/4096/);
    expect(parseConfig(MISTRAL_7B_V01, { maxModelLen: 4096 }).architecture).toBe('MistralForCausalLM');
  });

  it('Mistral without a sliding_window field takes the config class default (4096)', () => {
    const { sliding_window: _, ...noField } = MISTRAL_7B_V02;
    rejects(noField, 'sliding_window');
  });

  it('Qwen2.5-0.5B: q/k/v bias, tied embeddings, sliding window unused', () => {
    const c = parseConfig(QWEN25_05B);
    expect(c).toMatchObject({ architecture: 'Qwen2ForCausalLM', attentionBias: true, oProjBias: false, tieWordEmbeddings: true, numKvHeads: 2, headDim: 64, rmsNormEps: 1e-6 });
    expect(c.eosTokenIds).toEqual([151645]);
  });

  it('Qwen2 with use_sliding_window: rejected only when some layer slides', () => {
    rejects({ ...QWEN25_05B, use_sliding_window: true, sliding_window: 4096 }, 'sliding_window');
    expect(() => parseConfig({ ...QWEN25_05B, use_sliding_window: true, sliding_window: 4096, max_window_layers: 24 })).not.toThrow();
    expect(() => parseConfig({ ...QWEN25_05B, use_sliding_window: true, sliding_window: 4096, layer_types: Array(24).fill('full_attention') })).not.toThrow();
  });

  it('Llama with attention_bias has q/k/v and o_proj biases', () => {
    expect(parseConfig({ ...LLAMA2_7B, attention_bias: true })).toMatchObject({ attentionBias: true, oProjBias: true });
  });

  it('a config with only model_type, and HF defaults for the fields left out', () => {
    const c = parseConfig({ model_type: 'llama', vocab_size: 100, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4 });
    expect(c).toMatchObject({ architecture: 'LlamaForCausalLM', numKvHeads: 4, headDim: 16, ropeTheta: 10000, rmsNormEps: 1e-6, maxPositionEmbeddings: 2048, tieWordEmbeddings: false, torchDtype: undefined });
    expect(c.ropeScaling).toEqual({ type: 'none' });
  });

  it('linear rope scaling and the old "type" key', () => {
    expect(parseConfig({ ...LLAMA2_7B, rope_scaling: { type: 'linear', factor: 4 } }).ropeScaling).toEqual({ type: 'linear', factor: 4 });
    expect(parseConfig({ ...LLAMA2_7B, rope_scaling: { rope_type: 'default' } }).ropeScaling).toEqual({ type: 'none' });
  });

  it('reads the transformers-5 configs that save_pretrained wrote (rope_parameters, dtype)', async () => {
    const dir = join(import.meta.dirname, 'fixtures');
    const llama = await loadConfig(join(dir, 'tiny-llama'));
    expect(llama).toMatchObject({ architecture: 'LlamaForCausalLM', torchDtype: 'bf16', ropeTheta: 500000, numKvHeads: 2, headDim: 8 });
    expect(llama.ropeScaling).toEqual({ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 });
    const qwen = await loadConfig(join(dir, 'tiny-qwen2'));
    expect(qwen).toMatchObject({ architecture: 'Qwen2ForCausalLM', torchDtype: 'f16', tieWordEmbeddings: true, attentionBias: true, bosTokenId: undefined, eosTokenIds: [] });
    expect((await loadConfig(join(dir, 'tiny-mistral'))).torchDtype).toBe('f32');
  });
});

describe('parseConfig: rejections name the field and what is supported', () => {
  it('unsupported architecture', () => {
    const err = rejects({ ...LLAMA2_7B, architectures: ['GPT2LMHeadModel'] }, 'architectures');
    expect(err.message).toContain('LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM');
    expect(err.supported).toContain('Qwen2ForCausalLM');
  });

  it('rope scaling types other than linear and llama3', () => {
    const err = rejects({ ...LLAMA2_7B, rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 } }, 'rope_scaling.rope_type');
    expect(err.message).toMatch(/'yarn'.*supported:.*linear.*llama3/);
    rejects({ ...LLAMA2_7B, rope_scaling: { type: 'dynamic', factor: 2 } }, 'rope_scaling.type');
  });

  it('rope_parameters in a form other than one rope for all layers', () => {
    rejects({ ...LLAMA2_7B, rope_parameters: { full_attention: { rope_type: 'default', rope_theta: 1e4 } } }, 'rope_parameters');
  });

  it('bad rope scaling values', () => {
    rejects({ ...LLAMA2_7B, rope_scaling: { type: 'linear' } }, 'rope_scaling.factor');
    rejects({ ...LLAMA2_7B, rope_scaling: { type: 'linear', factor: -1 } }, 'rope_scaling.factor');
    const llama3 = LLAMA31_8B_INSTRUCT.rope_scaling;
    rejects({ ...LLAMA31_8B_INSTRUCT, rope_scaling: { ...llama3, high_freq_factor: 1 } }, 'rope_scaling.high_freq_factor');
  });

  it('activation, MLP bias, quantization, dtype', () => {
    expect(rejects({ ...LLAMA2_7B, hidden_act: 'gelu' }, 'hidden_act').message).toContain('supported: silu');
    rejects({ ...LLAMA2_7B, mlp_bias: true }, 'mlp_bias');
    rejects({ ...LLAMA2_7B, quantization_config: { quant_method: 'gptq', bits: 4 } }, 'quantization_config');
    rejects({ ...LLAMA2_7B, torch_dtype: 'int8' }, 'torch_dtype');
    rejects({ ...LLAMA2_7B, torch_dtype: 'toString' }, 'torch_dtype');
    rejects({ ...LLAMA2_7B, partial_rotary_factor: 0.5 }, 'partial_rotary_factor');
  });

  it('shapes: missing, non-integer, heads that do not divide', () => {
    const { hidden_size: _, ...noHidden } = LLAMA2_7B;
    expect(rejects(noHidden, 'hidden_size').message).toContain('missing');
    rejects({ ...LLAMA2_7B, num_hidden_layers: 2.5 }, 'num_hidden_layers');
    rejects({ ...LLAMA2_7B, vocab_size: '32000' }, 'vocab_size');
    rejects({ ...LLAMA2_7B, num_key_value_heads: 5 }, 'num_key_value_heads');
    rejects({ ...LLAMA2_7B, hidden_size: 4095 }, 'num_attention_heads');
    rejects({ ...LLAMA2_7B, rms_norm_eps: 0 }, 'rms_norm_eps');
    rejects({ ...LLAMA2_7B, eos_token_id: 'x' }, 'eos_token_id');
  });

  it('not an object; unreadable or invalid config.json', async () => {
    rejects([1, 2], '(root)');
    const dir = mkdtempSync(join(tmpdir(), 'parallm-cfg-'));
    await expect(loadConfig(dir)).rejects.toThrow(ModelConfigError);
    writeFileSync(join(dir, 'config.json'), '{"architectures": [');
    await expect(loadConfig(dir)).rejects.toThrow(/config.json.*not valid JSON/);
  });
});

describe('PRESETS', () => {
  // parameter counts as the model cards give them
  it.each([
    ['llama-2-7b', 6_738_415_616],
    ['llama-2-13b', 13_015_864_320],
    ['llama-2-70b', 68_976_648_192],
    ['llama-3-8b', 8_030_261_248],
  ] as const)('%s has the published parameter count', (name, params) => {
    expect(weightSpecs(PRESETS[name]).reduce((n, s) => n + numel(s.shape), 0)).toBe(params);
  });

  it('llama-2-70b uses GQA with 8 kv heads; llama-3-8b has the 128k vocabulary', () => {
    expect(PRESETS['llama-2-70b']).toMatchObject({ numHeads: 64, numKvHeads: 8, headDim: 128 });
    expect(PRESETS['llama-3-8b']).toMatchObject({ vocabSize: 128256, ropeTheta: 500000, numKvHeads: 8 });
  });
});

describe('scripts/write_dummy_model.py', () => {
  it.each(['llama-2-7b', 'llama-2-13b'] as const)('writes a config.json that loads as the %s preset, and a tokenizer', async (name) => {
    const dir = mkdtempSync(join(tmpdir(), 'parallm-dummy-model-'));
    execFileSync('python3', [join(import.meta.dirname, '..', '..', 'scripts', 'write_dummy_model.py'), dir, name], { stdio: 'pipe' });
    expect(await loadConfig(dir)).toEqual(PRESETS[name]);
    const { Tokenizer } = await import('../../src/tokenizer/tokenizer.ts');
    const tok = await Tokenizer.load(dir);
    expect(tok.encode('w5 w31999')).toEqual([5, 31999]);
  });
});

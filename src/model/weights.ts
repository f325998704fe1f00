// The model's weights on a device: HF tensor names mapped to device tensors, checked against
// the shapes the config implies, loaded from safetensors (streamed in chunks) or generated
// as seeded dummy values for benchmarks without a checkpoint.

import { SingleBar } from 'cli-progress';
import type { Device, Tensor } from '../device/device.ts';
import { byteSize } from '../device/dtype.ts';
import type { WeightDType } from '../device/ops.ts';
import type { ModelConfig } from './config.ts';
import { type DummyPools, fillDummy } from './dummy.ts';
import { TensorReader, DEFAULT_CHUNK_BYTES } from './reader.ts';
import { type TensorInfo, WeightsError, openCheckpoint } from './safetensors.ts';

export interface LayerWeights {
  inputNorm: Tensor; // [hidden]
  qProj: Tensor; // [num_heads * head_dim, hidden]
  kProj: Tensor; // [num_kv_heads * head_dim, hidden]
  vProj: Tensor; // [num_kv_heads * head_dim, hidden]
  oProj: Tensor; // [hidden, num_heads * head_dim]
  qBias?: Tensor; // [num_heads * head_dim] f32 (config.attentionBias)
  kBias?: Tensor; // [num_kv_heads * head_dim] f32
  vBias?: Tensor; // [num_kv_heads * head_dim] f32
  oBias?: Tensor; // [hidden] f32 (config.oProjBias)
  postAttentionNorm: Tensor; // [hidden]
  gateProj: Tensor; // [intermediate, hidden]
  upProj: Tensor; // [intermediate, hidden]
  downProj: Tensor; // [hidden, intermediate]
}

/** Weights in their HF Linear layout [out, in]; f32|f16|bf16 except biases, which are f32. */
export interface ModelWeights {
  embedTokens: Tensor; // [vocab, hidden]
  layers: LayerWeights[];
  norm: Tensor; // [hidden]
  /** [vocab, hidden]; the same tensor as embedTokens when config.tieWordEmbeddings. */
  lmHead: Tensor;
  /** Device bytes of all tensors. */
  bytes: number;
}

export type WeightKind = 'embedding' | 'linear' | 'norm' | 'bias';

/** One tensor the config implies: its HF name, shape and role. */
export interface WeightSpec {
  name: string;
  shape: number[];
  kind: WeightKind;
  /** How the config gives the shape, for error messages. */
  from: string;
}

/** Every tensor a checkpoint of this config must hold, in HF names. */
export function weightSpecs(c: ModelConfig): WeightSpec[] {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const specs: WeightSpec[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, c.hiddenSize], kind: 'embedding', from: '[vocab_size, hidden_size]' }];
  const QS = '[num_attention_heads * head_dim, hidden_size]';
  const KVS = '[num_key_value_heads * head_dim, hidden_size]';
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}.`;
    const add = (name: string, shape: number[], kind: WeightKind, from: string) => specs.push({ name: p + name, shape, kind, from });
    add('input_layernorm.weight', [c.hiddenSize], 'norm', '[hidden_size]');
    add('self_attn.q_proj.weight', [q, c.hiddenSize], 'linear', QS);
    add('self_attn.k_proj.weight', [kv, c.hiddenSize], 'linear', KVS);
    add('self_attn.v_proj.weight', [kv, c.hiddenSize], 'linear', KVS);
    if (c.attentionBias) {
      add('self_attn.q_proj.bias', [q], 'bias', '[num_attention_heads * head_dim]');
      add('self_attn.k_proj.bias', [kv], 'bias', '[num_key_value_heads * head_dim]');
      add('self_attn.v_proj.bias', [kv], 'bias', '[num_key_value_heads * head_dim]');
    }
    add('self_attn.o_proj.weight', [c.hiddenSize, q], 'linear', '[hidden_size, num_attention_heads * head_dim]');
    if (c.oProjBias) add('self_attn.o_proj.bias', [c.hiddenSize], 'bias', '[hidden_size]');
    add('post_attention_layernorm.weight', [c.hiddenSize], 'norm', '[hidden_size]');
    add('mlp.gate_proj.weight', [c.intermediateSize, c.hiddenSize], 'linear', '[intermediate_size, hidden_size]');
    add('mlp.up_proj.weight', [c.intermediateSize, c.hiddenSize], 'linear', '[intermediate_size, hidden_size]');
    add('mlp.down_proj.weight', [c.hiddenSize, c.intermediateSize], 'linear', '[hidden_size, intermediate_size]');
  }
  specs.push({ name: 'model.norm.weight', shape: [c.hiddenSize], kind: 'norm', from: '[hidden_size]' });
  if (!c.tieWordEmbeddings) specs.push({ name: 'lm_head.weight', shape: [c.vocabSize, c.hiddenSize], kind: 'linear', from: '[vocab_size, hidden_size]' });
  return specs;
}

/** Checkpoint tensors that HF itself skips: old rotary caches, and lm_head when it is tied to the embedding. */
function ignored(name: string, c: ModelConfig): boolean {
  return /\.rotary_emb\.inv_freq$/.test(name) || (c.tieWordEmbeddings && name === 'lm_head.weight');
}

export interface LoadOptions {
  /** 'safetensors' (default) reads modelDir; 'dummy' generates seeded values and reads nothing. */
  loadFormat?: 'safetensors' | 'dummy';
  /** Seed of the dummy values (default 0). */
  seed?: number;
  /** Store weights as this dtype (default: the checkpoint's; dummy: config.torchDtype, else f16). Biases are f32 always. */
  dtype?: WeightDType;
  /** Called as bytes are loaded (checkpoint bytes read, or dummy bytes generated). */
  onProgress?: (loaded: number, total: number) => void;
  /** Draw a progress bar on stderr when stderr is a TTY (default true; false never draws). */
  progressBar?: boolean;
  /** Host chunk size of reads and dummy generation (default 64 MiB). */
  chunkBytes?: number;
}

/** Waits for the device every this many bytes so that queued uploads cannot pile up in host staging memory. */
const SYNC_EVERY_BYTES = 2 ** 30;

/** Loads (or, with loadFormat 'dummy', generates) every weight of config onto device. */
export async function loadWeights(device: Device, modelDir: string | undefined, config: ModelConfig, opts: LoadOptions = {}): Promise<ModelWeights> {
  const specs = weightSpecs(config);
  const tensors = new Map<string, Tensor>();
  const alloc: Alloc = (s, dtype) => {
    // like `empty`, rounded up to 4 bytes for the upload tail, but without `& ~3`, which
    // wraps past 2 GiB (a Llama-3-70B lm_head is 2.1 GB)
    const bytes = Math.max(4, Math.ceil(byteSize(s.shape, dtype) / 4) * 4);
    const t: Tensor = { buffer: device.alloc(bytes, s.name), offset: 0, shape: [...s.shape], dtype };
    tensors.set(s.name, t);
    return t;
  };
  try {
    if (opts.loadFormat === 'dummy') await generate(device, specs, config, opts, alloc);
    else {
      if (modelDir === undefined) throw new WeightsError('(no model directory)', undefined, "loadFormat 'safetensors' needs a model directory");
      await readCheckpoint(device, modelDir, specs, config, opts, alloc);
    }
    await device.sync();
  } catch (e) {
    for (const t of tensors.values()) device.free(t.buffer);
    throw e;
  }
  return assemble(config, tensors);
}

type Alloc = (s: WeightSpec, dtype: WeightDType) => Tensor;

async function readCheckpoint(device: Device, modelDir: string, specs: WeightSpec[], config: ModelConfig, opts: LoadOptions, alloc: Alloc): Promise<void> {
  const ckpt = await openCheckpoint(modelDir);
  const infos = matchCheckpoint(ckpt.source, ckpt.tensors, specs, config);
  // in file order, so that each shard is read front to back
  const order = specs.map((s) => ({ s, info: infos.get(s.name)! })).sort((a, b) => a.info.file.localeCompare(b.info.file) || a.info.start - b.info.start);
  const progress = new Progress(order.reduce((n, { info }) => n + info.end - info.start, 0), opts, 'loading weights');
  const reader = new TensorReader(opts.chunkBytes ?? DEFAULT_CHUNK_BYTES);
  try {
    for (const { s, info } of order) {
      const t = alloc(s, s.kind === 'bias' ? 'f32' : (opts.dtype ?? info.dtype));
      await reader.upload(device, t, info, (n) => progress.add(n));
      await progress.maybeSync(device);
    }
  } finally {
    progress.stop();
    await reader.close();
  }
}

async function generate(device: Device, specs: WeightSpec[], config: ModelConfig, opts: LoadOptions, alloc: Alloc): Promise<void> {
  const dtype = opts.dtype ?? config.torchDtype ?? 'f16';
  const dtypeOf = (s: WeightSpec): WeightDType => (s.kind === 'bias' ? 'f32' : dtype);
  const progress = new Progress(specs.reduce((n, s) => n + byteSize(s.shape, dtypeOf(s)), 0), opts, 'generating dummy weights');
  const pools: DummyPools = new Map();
  try {
    for (const s of specs) {
      await fillDummy(device, alloc(s, dtypeOf(s)), s, opts.seed ?? 0, opts.chunkBytes ?? DEFAULT_CHUNK_BYTES, (n) => progress.add(n), pools);
      await progress.maybeSync(device);
    }
  } finally {
    progress.stop();
  }
}

/** The checkpoint tensor of every spec; any missing, misshapen or unexpected tensor is an error naming it. */
function matchCheckpoint(source: string, found: Map<string, TensorInfo>, specs: WeightSpec[], config: ModelConfig): Map<string, TensorInfo> {
  const list = (names: string[]) => names.slice(0, 8).join(', ') + (names.length > 8 ? ` and ${names.length - 8} more` : '');
  const expected = new Set(specs.map((s) => s.name));
  const unexpected = [...found.keys()].filter((n) => !expected.has(n) && !ignored(n, config));
  if (unexpected.length) {
    const first = found.get(unexpected[0])!;
    throw new WeightsError(first.file, unexpected[0], `is not a weight of ${config.architecture} as config.json describes it (${config.numLayers} layers${config.tieWordEmbeddings ? ', tied embeddings' : ''}); unexpected: ${list(unexpected)}`);
  }
  const missing = specs.filter((s) => !found.has(s.name)).map((s) => s.name);
  if (missing.length) throw new WeightsError(source, missing[0], `is missing from the checkpoint; missing: ${list(missing)}`);
  for (const s of specs) {
    const t = found.get(s.name)!;
    if (t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i])) {
      throw new WeightsError(t.file, s.name, `has shape [${t.shape.join(', ')}] but config.json implies [${s.shape.join(', ')}] = ${s.from}`);
    }
  }
  return found;
}

function assemble(c: ModelConfig, t: Map<string, Tensor>): ModelWeights {
  const get = (name: string) => t.get(name)!;
  const layers: LayerWeights[] = [];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}.`;
    layers.push({
      inputNorm: get(p + 'input_layernorm.weight'),
      qProj: get(p + 'self_attn.q_proj.weight'),
      kProj: get(p + 'self_attn.k_proj.weight'),
      vProj: get(p + 'self_attn.v_proj.weight'),
      oProj: get(p + 'self_attn.o_proj.weight'),
      qBias: t.get(p + 'self_attn.q_proj.bias'),
      kBias: t.get(p + 'self_attn.k_proj.bias'),
      vBias: t.get(p + 'self_attn.v_proj.bias'),
      oBias: t.get(p + 'self_attn.o_proj.bias'),
      postAttentionNorm: get(p + 'post_attention_layernorm.weight'),
      gateProj: get(p + 'mlp.gate_proj.weight'),
      upProj: get(p + 'mlp.up_proj.weight'),
      downProj: get(p + 'mlp.down_proj.weight'),
    });
  }
  const embedTokens = get('model.embed_tokens.weight');
  const bytes = [...t.values()].reduce((n, x) => n + byteSize(x.shape, x.dtype), 0);
  return { embedTokens, layers, norm: get('model.norm.weight'), lmHead: c.tieWordEmbeddings ? embedTokens : get('lm_head.weight'), bytes };
}

/** Frees every buffer of the weights (a tied lm_head once). */
export function freeWeights(device: Device, w: ModelWeights): void {
  const all = new Set([w.embedTokens, w.norm, w.lmHead, ...w.layers.flatMap((l) => Object.values(l) as (Tensor | undefined)[])]);
  for (const t of all) if (t) device.free(t.buffer);
}

/** Progress to the callback and, on a TTY, a bar on stderr; syncs the device every SYNC_EVERY_BYTES. */
class Progress {
  private loaded = 0;
  private sinceSync = 0;
  private bar: SingleBar | undefined;

  constructor(
    private total: number,
    private opts: LoadOptions,
    label: string,
  ) {
    if (opts.progressBar !== false && process.stderr.isTTY) {
      this.bar = new SingleBar({ stream: process.stderr, format: `${label} |{bar}| {percentage}% {value}/{total} MiB | {eta_formatted}`, hideCursor: true, clearOnComplete: false });
      this.bar.start(mib(total), 0);
    }
  }

  add(n: number): void {
    this.loaded += n;
    this.sinceSync += n;
    this.opts.onProgress?.(this.loaded, this.total);
    this.bar?.update(mib(this.loaded));
  }

  async maybeSync(device: Device): Promise<void> {
    if (this.sinceSync < SYNC_EVERY_BYTES) return;
    this.sinceSync = 0;
    await device.sync();
  }

  stop(): void {
    this.bar?.stop();
  }
}

const mib = (bytes: number) => Math.round(bytes / 2 ** 20);

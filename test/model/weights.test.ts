// Loading weights onto a device (the cpu backend): checkpoints written by transformers itself
// (fixtures), round trips through the test writer for every dtype, single and sharded, dtype
// conversion, the checks against the config, and seeded dummy weights.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Device, Tensor } from '../../src/device/device.ts';
import { createDevice } from '../../src/device/index.ts';
import { decode, numel, roundTrip } from '../../src/device/dtype.ts';
import { type ModelConfig, PRESETS, loadConfig } from '../../src/model/config.ts';
import { WeightsError } from '../../src/model/safetensors.ts';
import { POOL_FROM } from '../../src/model/dummy.ts';
import { type ModelWeights, freeWeights, loadWeights, weightSpecs } from '../../src/model/weights.ts';
import { tempDir, tensorOf, writeModel } from './safetensors_writer.ts';

let device: Device;
beforeAll(async () => {
  device = await createDevice('cpu');
});
afterAll(() => device.destroy());

const FIXTURES = join(import.meta.dirname, 'fixtures');

// odd sizes: element counts like 11 x 9 leave 2-byte tails in f16/bf16 uploads
const TINY: ModelConfig = {
  architecture: 'LlamaForCausalLM',
  vocabSize: 11,
  hiddenSize: 9,
  intermediateSize: 7,
  numLayers: 2,
  numHeads: 3,
  numKvHeads: 1,
  headDim: 4,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: { type: 'none' },
  maxPositionEmbeddings: 64,
  tieWordEmbeddings: false,
  attentionBias: false,
  oProjBias: false,
  torchDtype: 'f16',
  bosTokenId: 1,
  eosTokenIds: [2],
};
const TINY_QWEN: ModelConfig = { ...TINY, architecture: 'Qwen2ForCausalLM', attentionBias: true, tieWordEmbeddings: true };

/** Every loaded tensor by HF name. */
function byName(config: ModelConfig, w: ModelWeights): Map<string, Tensor> {
  const m = new Map<string, Tensor>([['model.embed_tokens.weight', w.embedTokens], ['model.norm.weight', w.norm]]);
  if (!config.tieWordEmbeddings) m.set('lm_head.weight', w.lmHead);
  w.layers.forEach((l, i) => {
    const p = `model.layers.${i}.`;
    const named: [string, Tensor | undefined][] = [
      ['input_layernorm.weight', l.inputNorm],
      ['self_attn.q_proj.weight', l.qProj],
      ['self_attn.k_proj.weight', l.kProj],
      ['self_attn.v_proj.weight', l.vProj],
      ['self_attn.o_proj.weight', l.oProj],
      ['self_attn.q_proj.bias', l.qBias],
      ['self_attn.k_proj.bias', l.kBias],
      ['self_attn.v_proj.bias', l.vBias],
      ['self_attn.o_proj.bias', l.oBias],
      ['post_attention_layernorm.weight', l.postAttentionNorm],
      ['mlp.gate_proj.weight', l.gateProj],
      ['mlp.up_proj.weight', l.upProj],
      ['mlp.down_proj.weight', l.downProj],
    ];
    for (const [n, t] of named) if (t) m.set(p + n, t);
  });
  return m;
}

async function values(t: Tensor): Promise<number[]> {
  return Array.from(decode(await device.download(t), t.dtype));
}

describe('loadWeights: checkpoints saved by transformers', () => {
  const DT: Record<string, string> = { 'torch.bfloat16': 'bf16', 'torch.float16': 'f16', 'torch.float32': 'f32' };

  it.each([
    ['tiny-llama', 'sharded bf16, llama3 rope'],
    ['tiny-qwen2', 'f16, q/k/v bias, tied embeddings'],
    ['tiny-mistral', 'f32'],
  ])('%s (%s): every tensor holds the values torch saved', async (name) => {
    const dir = join(FIXTURES, name);
    const config = await loadConfig(dir);
    const ref = JSON.parse(readFileSync(join(dir, 'ref.json'), 'utf8'));
    const w = await loadWeights(device, dir, config);
    const loaded = byName(config, w);
    // torch's state_dict lists a tied lm_head too; the loader keeps the embedding alone
    const expected = Object.keys(ref).filter((n) => !(config.tieWordEmbeddings && n === 'lm_head.weight'));
    expect([...loaded.keys()].sort()).toEqual(expected.sort());
    for (const [n, t] of loaded) {
      const r = ref[n];
      expect(t.shape, n).toEqual(r.shape);
      expect(t.dtype, n).toBe(n.endsWith('.bias') ? 'f32' : DT[r.dtype]);
      const v = await values(t);
      // sums in the same order as Python's: f16/bf16 widen exactly, so these agree to the bit
      expect([v.slice(0, 4), v.slice(-2), v.reduce((s, x) => s + x, 0), v.reduce((s, x, i) => s + x * ((i % 7) + 1), 0)], n).toEqual([r.head, r.tail, r.sum, r.weighted]);
    }
    if (config.tieWordEmbeddings) expect(w.lmHead).toBe(w.embedTokens);
    freeWeights(device, w);
    expect(device.memory().allocated).toBe(0);
  });
});

describe('loadWeights: round trips through the writer', () => {
  it.each([
    ['f32', 1],
    ['f16', 1],
    ['bf16', 1],
    ['f32', 3],
    ['f16', 4],
    ['bf16', 5],
  ] as const)('%s in %i file(s): device bytes equal file bytes', async (dtype, shards) => {
    for (const config of [TINY, TINY_QWEN]) {
      const dir = tempDir();
      const written = writeModel(dir, config, dtype, shards);
      // a 24-byte chunk splits most tensors, and leaves 2-byte tails for f16/bf16
      const w = await loadWeights(device, dir, config, { chunkBytes: 24 });
      for (const [n, t] of byName(config, w)) {
        if (n.endsWith('.bias')) expect(await values(t), n).toEqual(Array.from(roundTrip(written[n].values!, dtype)));
        else expect(await device.download(t), n).toEqual(written[n].data);
      }
      freeWeights(device, w);
    }
  });

  it.each([
    ['bf16', 'f32'],
    ['f32', 'f16'],
    ['f32', 'bf16'],
    ['f16', 'bf16'],
    ['bf16', 'f16'],
  ] as const)('%s on disk, stored as %s', async (from, to) => {
    const dir = tempDir();
    const written = writeModel(dir, TINY_QWEN, from);
    const w = await loadWeights(device, dir, TINY_QWEN, { dtype: to, chunkBytes: 16 });
    for (const [n, t] of byName(TINY_QWEN, w)) {
      const want = n.endsWith('.bias') ? 'f32' : to;
      expect(t.dtype, n).toBe(want);
      expect(await values(t), n).toEqual(Array.from(roundTrip(roundTrip(written[n].values!, from), want)));
    }
    freeWeights(device, w);
  });

  it('reports progress in bytes read, ending at the total', async () => {
    const dir = tempDir();
    writeModel(dir, TINY, 'f16', 2);
    const seen: [number, number][] = [];
    const w = await loadWeights(device, dir, TINY, { chunkBytes: 64, onProgress: (n, total) => seen.push([n, total]) });
    const total = weightSpecs(TINY).reduce((s, x) => s + numel(x.shape) * 2, 0);
    expect(seen.at(-1)).toEqual([total, total]);
    expect(seen.every(([n], i) => i === 0 || n > seen[i - 1][0])).toBe(true);
    freeWeights(device, w);
  });
});

describe('loadWeights: the checkpoint must match the config', () => {
  async function loadError(dir: string, config: ModelConfig): Promise<WeightsError> {
    const err = await loadWeights(device, dir, config).catch((e) => e);
    expect(err).toBeInstanceOf(WeightsError);
    return err;
  }

  it('a missing tensor is named', async () => {
    const dir = tempDir();
    writeModel(dir, { ...TINY, numLayers: 1 }, 'f16');
    const err = await loadError(dir, TINY);
    expect([err.file, err.tensor]).toEqual([join(dir, 'model.safetensors'), 'model.layers.1.input_layernorm.weight']);
    expect(err.message).toMatch(/missing: model.layers.1.input_layernorm.weight, model.layers.1.self_attn.q_proj.weight, .* and \d+ more/);
  });

  it('an unexpected tensor is named, with the file holding it', async () => {
    const dir = tempDir();
    writeModel(dir, TINY, 'f16', 1, { 'model.layers.0.mlp.extra.weight': tensorOf([2], 'f16', 9) });
    const err = await loadError(dir, TINY);
    expect([err.file, err.tensor]).toEqual([join(dir, 'model.safetensors'), 'model.layers.0.mlp.extra.weight']);
    // a checkpoint with more layers than the config
    const dir2 = tempDir();
    writeModel(dir2, { ...TINY, numLayers: 3 }, 'f16');
    expect((await loadError(dir2, TINY)).message).toMatch(/model.layers.2.*is not a weight of LlamaForCausalLM/);
  });

  it('a shape the config does not imply is named with the fields it comes from', async () => {
    const dir = tempDir();
    writeModel(dir, { ...TINY, numKvHeads: 3 }, 'f16'); // MHA checkpoint, GQA config
    const err = await loadError(dir, TINY);
    expect(err.tensor).toBe('model.layers.0.self_attn.k_proj.weight');
    expect(err.message).toMatch(/shape \[12, 9\] but config.json implies \[4, 9\] = \[num_key_value_heads \* head_dim, hidden_size\]/);
  });

  it('ignores what transformers ignores: lm_head when tied, rotary caches', async () => {
    const dir = tempDir();
    writeModel(dir, TINY_QWEN, 'f16', 1, {
      'lm_head.weight': tensorOf([11, 9], 'f16', 5),
      'model.layers.0.self_attn.rotary_emb.inv_freq': tensorOf([2], 'f32', 6),
    });
    const w = await loadWeights(device, dir, TINY_QWEN);
    expect(w.lmHead).toBe(w.embedTokens);
    freeWeights(device, w);
  });

  it('a failure part way frees what was allocated', async () => {
    const dir = tempDir();
    writeModel(dir, TINY, 'f16');
    const cpu = await createDevice('cpu');
    let uploads = 0;
    let allocatedAtFailure = 0;
    const flaky: Device = {
      info: cpu.info,
      alloc: (bytes, label) => cpu.alloc(bytes, label),
      free: (b) => cpu.free(b),
      memory: () => cpu.memory(),
      upload: (t, data) => {
        if (++uploads === 10) {
          allocatedAtFailure = cpu.memory().allocated;
          throw new Error('device lost');
        }
        cpu.upload(t, data);
      },
      download: (t) => cpu.download(t),
      supports: (name, args) => cpu.supports(name, args),
      stream: (o) => cpu.stream(o),
      sync: () => cpu.sync(),
      destroy: () => cpu.destroy(),
    };
    await expect(loadWeights(flaky, dir, TINY)).rejects.toThrow('device lost');
    expect(allocatedAtFailure).toBeGreaterThan(0);
    expect(cpu.memory().allocated).toBe(0);
  });
});

describe("loadWeights: loadFormat 'dummy'", () => {
  it('builds every tensor of the config with seeded values of the right scale', async () => {
    const w = await loadWeights(device, undefined, TINY_QWEN, { loadFormat: 'dummy', seed: 1 });
    const tensors = byName(TINY_QWEN, w);
    expect(tensors.size).toBe(weightSpecs(TINY_QWEN).length);
    for (const s of weightSpecs(TINY_QWEN)) {
      const t = tensors.get(s.name)!;
      expect(t.shape).toEqual(s.shape);
      expect(t.dtype).toBe(s.kind === 'bias' ? 'f32' : 'f16');
      const v = await values(t);
      const bound = s.kind === 'norm' ? 0.051 : 1.001 / Math.sqrt(s.shape.at(-1)!);
      const center = s.kind === 'norm' ? 1 : 0;
      expect(v.every((x) => Math.abs(x - center) <= bound), s.name).toBe(true);
      expect(new Set(v).size, s.name).toBeGreaterThan(Math.min(3, v.length - 1)); // not constant
    }
    const again = await loadWeights(device, undefined, TINY_QWEN, { loadFormat: 'dummy', seed: 1, chunkBytes: 8 });
    const other = await loadWeights(device, undefined, TINY_QWEN, { loadFormat: 'dummy', seed: 2 });
    expect(await device.download(again.layers[1].gateProj)).toEqual(await device.download(w.layers[1].gateProj)); // chunking does not change values
    expect(await device.download(other.layers[1].gateProj)).not.toEqual(await device.download(w.layers[1].gateProj));
    for (const x of [w, again, other]) freeWeights(device, x);
  });

  it('a 7B-shaped model streams in chunks: no upload over 64 MiB, every byte written once', async () => {
    // llama-2-7b with one layer (the 32 are the same tensors again): a device that only counts
    const config = { ...PRESETS['llama-2-7b'], numLayers: 1 };
    const written = new Map<number, number>();
    let largest = 0;
    let id = 0;
    const counting = {
      info: device.info,
      alloc: (size: number, label = '') => ({ id: id++, size, label, device: counting }),
      free: () => {},
      upload: (t: Tensor, data: ArrayBufferView) => {
        largest = Math.max(largest, data.byteLength);
        written.set(t.buffer.id, (written.get(t.buffer.id) ?? 0) + data.byteLength);
      },
      sync: async () => {},
    } as unknown as Device;
    const w = await loadWeights(counting, undefined, config, { loadFormat: 'dummy' });
    expect(w.bytes).toBe(weightSpecs(config).reduce((n, s) => n + numel(s.shape) * 2, 0)); // f16, 0.93 GB
    expect(largest).toBe(64 * 2 ** 20);
    expect(written.size).toBe(weightSpecs(config).length);
    for (const t of [w.embedTokens, w.lmHead, w.layers[0].gateProj, w.norm]) expect(written.get(t.buffer.id)).toBe(numel(t.shape) * 2);
  });

  it('uses the requested dtype, else the config dtype', async () => {
    const bf = await loadWeights(device, undefined, { ...TINY, torchDtype: 'bf16' }, { loadFormat: 'dummy' });
    expect(bf.embedTokens.dtype).toBe('bf16');
    const f32 = await loadWeights(device, undefined, TINY, { loadFormat: 'dummy', dtype: 'f32' });
    expect(f32.layers[0].downProj.dtype).toBe('f32');
    freeWeights(device, bf);
    freeWeights(device, f32);
  });
});

describe('dummy weights above POOL_FROM elements: windows into a shared pool', () => {
  it('stay in range, do not repeat within a tensor, differ between tensors and seeds, and do not depend on chunking', async () => {
    // gate and up projections of 4098 x 2048 (2^23 + 4096 elements): over POOL_FROM, one range, one pool
    const config = { ...TINY, hiddenSize: 2048, intermediateSize: 4098, numLayers: 1, numHeads: 16, numKvHeads: 16, headDim: 128 };
    const raw = async (w: ModelWeights, which: 'gateProj' | 'upProj') => Buffer.from(await device.download(w.layers[0][which]));
    const w = await loadWeights(device, undefined, config, { loadFormat: 'dummy', seed: 3 });
    expect(numel(w.layers[0].gateProj.shape)).toBeGreaterThan(POOL_FROM);
    const gate = await raw(w, 'gateProj');
    const rowBytes = 2048 * 2;
    const v = decode(gate.subarray(0, 64 * rowBytes), 'f16');
    const bound = 1.001 / Math.sqrt(2048);
    expect(v.every((x) => Math.abs(x) <= bound)).toBe(true);
    expect(new Set(v).size).toBeGreaterThan(1000);
    // no short period: the first row does not come back in the first 64 rows, nor in up_proj
    const row0 = gate.subarray(0, rowBytes);
    for (let r = 1; r < 64; r++) expect(row0.equals(gate.subarray(r * rowBytes, (r + 1) * rowBytes))).toBe(false);
    const up = await raw(w, 'upProj');
    expect(row0.equals(up.subarray(0, rowBytes))).toBe(false);
    freeWeights(device, w);
    const again = await loadWeights(device, undefined, config, { loadFormat: 'dummy', seed: 3, chunkBytes: 1 << 20 });
    expect((await raw(again, 'upProj')).equals(up)).toBe(true);
    freeWeights(device, again);
    const other = await loadWeights(device, undefined, config, { loadFormat: 'dummy', seed: 4 });
    expect((await raw(other, 'upProj')).equals(up)).toBe(false);
    freeWeights(device, other);
  });
});

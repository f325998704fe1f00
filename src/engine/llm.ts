// The JS API: `const llm = await LLM.create({ model })`, `await llm.generate(prompts, params)`
// for offline batches, `llm.stream(prompt, params, { signal })` for one request's outputs as an
// async iterator. Everything below (device, weights, KV cache, scheduler) is built here.

import { execFileSync } from 'node:child_process';
import { type Device, type WeightDType, createDevice } from '../device/index.ts';
import { type ModelConfig, PRESETS, type PresetName, loadConfig } from '../model/config.ts';
import { KvCache, type KvDType } from '../model/kv-cache.ts';
import { LlamaModel } from '../model/llama.ts';
import { loadWeights } from '../model/weights.ts';
import { Tokenizer } from '../tokenizer/tokenizer.ts';
import { BlockManager } from './block-manager.ts';
import { LLMEngine } from './llm-engine.ts';
import type { RequestOutput, RequestStream } from './outputs.ts';
import { ModelRunner } from './runner.ts';
import type { SamplingParams } from './sampling-params.ts';
import { Scheduler } from './scheduler.ts';

export interface LLMOptions {
  /** A Hugging Face model directory; or `dummy` for seeded random weights of a preset or config. */
  model?: string;
  dummy?: PresetName | ModelConfig;
  /**
   * vLLM's load format: 'safetensors' (default) reads `model`'s weights; 'dummy' takes its
   * config.json and tokenizer but fills the weights with seeded random values (benchmarks of a
   * model shape without its checkpoint on disk).
   */
  loadFormat?: 'safetensors' | 'dummy';
  backend?: string;
  /** Fraction of device memory for weights + activations + KV cache (default 0.9). */
  gpuMemoryUtilization?: number;
  /** KV blocks on the device; by default sized from the device's memory. */
  numGpuBlocks?: number;
  blockSize?: number;
  kvCacheDtype?: KvDType;
  /** Largest part of a layer's K or V pool, in bytes (default: the device's binding limit); lower it to split small pools (tests). */
  maxKvPartBytes?: number;
  /** Host memory for swapped-out blocks, in GiB (default 4; 0 disables swapping). */
  swapSpaceGiB?: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  maxModelLen?: number;
  enablePrefixCaching?: boolean;
  enableChunkedPrefill?: boolean;
  /** Time every step on the device (GPU idle fraction in stats). */
  timing?: boolean;
  /** Launch step N+1 while step N runs (default true; see EngineOptions). */
  overlapSteps?: boolean;
  /**
   * Run each step shape once before serving (LlamaModel.warmup), so that no request waits for a
   * kernel to be compiled or loaded. Default: on a GPU (webgpu, native); off on the CPU backends
   * and on software adapters (llvmpipe), where it would only slow startup.
   */
  warmup?: boolean;
  /** Seed of dummy weights. */
  seed?: number;
  /** Store weights as this dtype (default: as the checkpoint stores them; dummy weights f16). */
  dtype?: WeightDType;
}

/** Device memory in bytes, where the platform says (nvidia-smi / rocm-smi); undefined otherwise. */
export function deviceMemoryBytes(): number | undefined {
  const tries: [string, string[], (out: string) => number][] = [
    ['nvidia-smi', ['--query-gpu=memory.total', '--format=csv,noheader,nounits'], (o) => parseFloat(o.split('\n')[0]) * 2 ** 20],
    ['rocm-smi', ['--showmeminfo', 'vram', '--csv'], (o) => parseFloat(o.split('\n')[1]?.split(',')[1] ?? '')],
  ];
  for (const [cmd, args, parse] of tries) {
    try {
      const v = parse(execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).toString());
      if (Number.isFinite(v) && v > 0) return v;
    } catch {
      /* not this platform */
    }
  }
  return undefined;
}

/** Whether the device is a GPU: not the CPU reference, nor a software WebGPU adapter. */
function isGpu(device: Device): boolean {
  if (device.info.backend === 'cpu') return false;
  return !/llvmpipe|lavapipe|swiftshader|softpipe/i.test(`${device.info.name} ${device.info.description}`);
}

/** A step's activation peak: the per-token buffers of the widest step plus the logits of every sequence. */
function activationBytes(c: ModelConfig, tokens: number, seqs: number): number {
  // residual, xn, h_out; qkv, q, attn; gate_up, act (src/model/llama.ts)
  const perToken = 4 * (3 * c.hiddenSize + 3 * c.numHeads * c.headDim + 2 * c.numKvHeads * c.headDim + 3 * c.intermediateSize);
  return tokens * perToken * 1.25 + seqs * c.vocabSize * 4 * 4;
}

export class LLM {
  private constructor(
    readonly device: Device,
    readonly engine: LLMEngine,
    readonly config: ModelConfig,
    readonly cache: KvCache,
    private model: LlamaModel,
    private runner: ModelRunner,
  ) {}

  static async create(o: LLMOptions): Promise<LLM> {
    if (!o.model && !o.dummy) throw new Error('LLM.create: give `model` (a model directory) or `dummy` (a preset such as llama-2-7b)');
    const device = await createDevice(o.backend ?? 'webgpu');
    const config = o.dummy ? (typeof o.dummy === 'string' ? { ...PRESETS[o.dummy] } : o.dummy) : await loadConfig(o.model!);
    const tokenizer = o.model ? await Tokenizer.load(o.model) : undefined;
    const random = o.dummy !== undefined || o.loadFormat === 'dummy';
    const weights = await loadWeights(device, o.model, config, random ? { loadFormat: 'dummy', seed: o.seed ?? 0, dtype: o.dtype } : { dtype: o.dtype });
    const model = new LlamaModel(device, config, weights);
    const blockSize = o.blockSize ?? 16;
    const dtype = o.kvCacheDtype ?? 'f16';
    const maxModelLen = Math.min(o.maxModelLen ?? config.maxPositionEmbeddings, config.maxPositionEmbeddings);
    const maxNumSeqs = o.maxNumSeqs ?? 256;
    const maxNumBatchedTokens = o.maxNumBatchedTokens ?? Math.max(2048, maxNumSeqs);
    const perBlock = KvCache.bytesPerBlock(config, blockSize, dtype);
    let numBlocks = o.numGpuBlocks;
    if (numBlocks === undefined) {
      const total = deviceMemoryBytes();
      if (total === undefined) numBlocks = Math.floor(2 ** 28 / perBlock); // unknown memory (CPU, llvmpipe): 256 MiB of KV
      else {
        const budget = total * (o.gpuMemoryUtilization ?? 0.9) - weights.bytes - activationBytes(config, maxNumBatchedTokens, maxNumSeqs);
        numBlocks = Math.floor(budget / perBlock);
        if (numBlocks < Math.ceil(maxModelLen / blockSize)) {
          throw new Error(`not enough device memory for the KV cache: ${Math.max(0, numBlocks)} blocks of ${perBlock} bytes after ${weights.bytes} bytes of weights; lower maxModelLen or maxNumBatchedTokens, or raise gpuMemoryUtilization`);
        }
      }
    }
    // A layer's pool spans up to device.info.maxPoolParts bindings (KvCache splits it). Sized
    // from memory, the cache takes at most what those can hold: a tiny model on an H200 would
    // otherwise want more; a number of blocks given by the user that they cannot hold is
    // KvCache's error (KvCacheTooLargeError).
    const maxPartBytes = o.maxKvPartBytes;
    if (o.numGpuBlocks === undefined) numBlocks = Math.min(numBlocks, KvCache.maxBlocks(device, config, blockSize, dtype, maxPartBytes));
    const cache = new KvCache(device, config, { numBlocks, blockSize, dtype, maxPartBytes });
    const numHostBlocks = Math.floor(((o.swapSpaceGiB ?? 4) * 2 ** 30) / perBlock);
    const blocks = new BlockManager({ numBlocks, blockSize, numHostBlocks, enablePrefixCaching: o.enablePrefixCaching ?? true });
    const scheduler = new Scheduler({ maxModelLen, maxNumSeqs, maxNumBatchedTokens, enableChunkedPrefill: o.enableChunkedPrefill ?? true }, blocks);
    if (o.warmup ?? isGpu(device)) {
      try {
        await model.warmup(cache, { maxRows: maxNumSeqs, maxTokens: maxNumBatchedTokens });
      } catch (e) {
        cache.free();
        model.free();
        device.destroy();
        throw e;
      }
    }
    const runner = new ModelRunner(device, model, cache, o.timing ?? false);
    const eos = tokenizer?.eosTokenIds ?? config.eosTokenIds;
    const engine = new LLMEngine(tokenizer, eos, scheduler, blocks, runner, maxModelLen, { overlapSteps: o.overlapSteps });
    return new LLM(device, engine, config, cache, model, runner);
  }

  /** Runs every prompt to completion as one continuous batch; outputs in prompt order. */
  async generate(prompts: string | (string | number[])[], params: Partial<SamplingParams> = {}): Promise<RequestOutput[]> {
    const list = typeof prompts === 'string' ? [prompts] : prompts;
    const streams = list.map((p) => this.engine.addRequest(p, params));
    return Promise.all(streams.map((s) => s.final()));
  }

  /** One request whose outputs arrive as they are produced; abort with `signal`. */
  stream(prompt: string | number[], params: Partial<SamplingParams> = {}, opts: { signal?: AbortSignal; requestId?: string } = {}): RequestStream {
    return this.engine.addRequest(prompt, params, opts);
  }

  async close(): Promise<void> {
    await this.engine.drain();
    this.runner.free();
    this.cache.free();
    this.model.free();
    this.device.destroy();
  }
}

// The model's choice of activation type (LlamaModel.activationDtype): on a device that prefers
// 16-bit activations (features.activations16: native with a BLAS library) the norms and
// silu_and_mul write the weights' f16 and the q/k/v, gate/up and down matmuls take it as it
// is; elsewhere, or where the device cannot take them (WebGPU), everything stays f32. The
// logits stay within f16 rounding of the f32 path (one rounding of each matmul's input); on native
// they equal it, as its f32 path rounded the same values in its cast kernel.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CommandStream, type Device, createDevice } from '../../src/device/index.ts';
import { loadConfig } from '../../src/model/config.ts';
import { KvCache } from '../../src/model/kv-cache.ts';
import { LlamaModel } from '../../src/model/llama.ts';
import { type ModelWeights, freeWeights, loadWeights } from '../../src/model/weights.ts';
import { backendsUnderTest, relErr } from '../ops/harness.ts';
import { overriding, prefill } from './steps.ts';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'hf', 'tiny-llama');

/** dev with features.activations16 set to `on`, logging each matmul's a type and each norm's out type. */
function preferring(dev: Device, on: boolean, seen: string[]): Device {
  const spy = (s: CommandStream): CommandStream => {
    const p: CommandStream = new Proxy(s, {
      get(t, key) {
        if (key === 'op')
          return (name: string, args: any) => {
            if (name === 'matmul') seen.push(`matmul ${args.w.shape[0]}x${args.w.shape[1]} a ${args.a.dtype}`);
            if (name === 'rms_norm' || name === 'silu_and_mul') seen.push(`${name} out ${args.out.dtype}`);
            (t.op as any)(name, args);
            return p;
          };
        const v = Reflect.get(t, key, t);
        return typeof v === 'function' ? v.bind(t) : v;
      },
    });
    return p;
  };
  return overriding(dev, {
    info: { ...dev.info, features: { ...dev.info.features, activations16: on } },
    stream: (...a: Parameters<Device['stream']>) => spy(dev.stream(...a)),
  });
}

describe.each(['cpu', ...backendsUnderTest()])('%s backend: 16-bit activations in the model', (backend) => {
  let dev: Device;
  let weights: ModelWeights;
  let config: Awaited<ReturnType<typeof loadConfig>>;
  beforeAll(async () => {
    dev = await createDevice(backend);
    config = await loadConfig(DIR);
    weights = await loadWeights(dev, DIR, config, { progressBar: false, dtype: 'f16' });
  });
  afterAll(() => {
    if (weights) freeWeights(dev, weights);
    dev?.destroy();
  });

  async function run(on: boolean): Promise<{ logits: Float32Array; seen: string[] }> {
    const seen: string[] = [];
    const d = preferring(dev, on, seen);
    const model = new LlamaModel(d, config, weights);
    const cache = new KvCache(dev, config, { numBlocks: 32, blockSize: 4, dtype: 'f32' });
    try {
      return { logits: await model.logits(prefill([9, 3, 14]), cache), seen };
    } finally {
      cache.free();
    }
  }

  it('takes the weights\' f16 for the norms\' outputs and the matmuls after them where the device prefers and takes it, and stays within f16 rounding of f32', async () => {
    const f32 = await run(false);
    expect(f32.seen.filter((x) => x.includes('f16'))).toEqual([]);
    const f16 = await run(true);
    const H = config.hiddenSize;
    const I = config.intermediateSize;
    const takes = backend !== 'webgpu'; // WebGPU's kernels take f32 activations only
    const t = takes ? 'f16' : 'f32';
    const layer0 = f16.seen.slice(0, 8);
    expect(layer0).toEqual([
      `rms_norm out ${t}`,
      `matmul ${(config.numHeads + 2 * config.numKvHeads) * config.headDim}x${H} a ${t}`,
      `matmul ${H}x${config.numHeads * config.headDim} a f32`, // o_proj: attention writes f32
      `rms_norm out ${t}`,
      `matmul ${2 * I}x${H} a ${t}`,
      `silu_and_mul out ${t}`,
      `matmul ${H}x${I} a ${t}`,
      `rms_norm out ${t}`, // layer 1's input norm
    ]);
    expect(f16.seen.at(-1)).toBe(`matmul ${config.vocabSize}x${H} a f32`); // lm_head after the gather
    const err = relErr(f16.logits, f32.logits);
    if (backend === 'native') {
      // native's f32 path casts a to f16 before cuBLAS: the same rounding of the same f32 values
      expect(err).toBeLessThan(1e-6);
    } else if (takes) {
      // the cpu reference multiplies f32 activations exactly: the 16-bit path is one rounding off
      expect(err).toBeGreaterThan(0);
      expect(err).toBeLessThan(1e-2);
    } else expect(err).toBe(0);
  });
});

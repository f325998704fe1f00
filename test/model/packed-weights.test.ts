// The model's packing of its matmul weights (Device.packWeight, docs/architecture.md): which
// weights it packs (o_proj, down_proj, an untied lm_head, and a q/k/v or gate/up stack only
// where every part starts on a whole tile: the tiny model's do not), and that its logits are
// those of the row-major weights. The webgpu backend packs only where it has subgroup
// matrices; here a device that tiles on any adapter stands in for it, and the step keeps to
// 16 tokens, where the gemv kernels (which read the tiled layout on llvmpipe too) run.

import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Device, type Tensor, createDevice } from '../../src/device/index.ts';
import { type WebGpuDevice, canTile } from '../../src/device/webgpu/backend.ts';
import { loadConfig } from '../../src/model/config.ts';
import { KvCache } from '../../src/model/kv-cache.ts';
import { LlamaModel } from '../../src/model/llama.ts';
import { loadWeights } from '../../src/model/weights.ts';
import { backendsUnderTest } from '../ops/harness.ts';
import { overriding, prefill } from './steps.ts';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'hf', 'tiny-llama');

/** dev, packing every weight the tiled layout can hold (as the webgpu backend does on a GPU with subgroup matrices). */
const tiling = (dev: WebGpuDevice): Device => overriding(dev, { packWeight: (w: Tensor) => (canTile(w) ? dev.tileWeight(w) : w) });

describe.runIf(backendsUnderTest().includes('webgpu'))('webgpu backend: the model on packed weights', () => {
  const env = process.env.PARALLM_TILED_WEIGHTS;
  afterEach(() => {
    if (env === undefined) delete process.env.PARALLM_TILED_WEIGHTS;
    else process.env.PARALLM_TILED_WEIGHTS = env;
  });

  it('packs o_proj, down_proj and the untied lm_head, leaves unaligned stacks row-major, and gives the row-major logits', async () => {
    const dev = (await createDevice('webgpu')) as WebGpuDevice;
    const config = await loadConfig(DIR);
    expect(config.tieWordEmbeddings).toBe(false);
    const logits: Float32Array[] = [];
    try {
      for (const packed of [false, true]) {
        process.env.PARALLM_TILED_WEIGHTS = '0'; // the plain device packs nothing, on any adapter
        const weights = await loadWeights(dev, DIR, config, { progressBar: false, dtype: 'f16' });
        const model = new LlamaModel(packed ? tiling(dev) : dev, config, weights);
        const cache = new KvCache(dev, config, { numBlocks: 32, blockSize: 4, dtype: 'f32' });
        try {
          const L = weights.layers[0];
          const want = packed ? 'tiled' : undefined;
          expect([L.oProj.layout, L.downProj.layout, weights.lmHead.layout]).toEqual([want, want, want]);
          // q has 64 rows and gate 160: the stacks' parts do not start on whole tiles of 128
          expect([L.qProj.layout, L.gateProj.layout, weights.embedTokens.layout]).toEqual([undefined, undefined, undefined]);
          // 15 tokens: every matmul on the gemv kernels, which read both layouts
          logits.push(await model.logits(prefill([5, 3, 7]), cache));
          if (packed) {
            // the model packed these weights: another model cannot stack them again
            expect(() => new LlamaModel(dev, config, weights)).not.toThrow(); // its stacks are row-major views
            L.qProj = L.oProj;
            expect(() => new LlamaModel(dev, config, weights)).toThrow(/were packed \(tiled\) by a model built on them before/);
          }
        } finally {
          cache.free();
          model.free();
        }
      }
      expect(Array.from(logits[1])).toEqual(Array.from(logits[0]));
    } finally {
      dev.destroy();
    }
  });
});

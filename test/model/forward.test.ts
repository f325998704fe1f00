// The LLaMA-family forward pass against HF transformers (test/fixtures/hf, written by
// scripts/make_hf_fixtures.py): last-token logits and greedy continuations, one sequence at a
// time and as a batch of mixed-length sequences whose KV cache lives in shuffled blocks, on the
// CPU reference and on every backend under test; with each layer's pools whole, and split into
// 3 parts (src/device/kv-pool.ts) so that a sequence's blocks lie in several.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Device, createDevice } from '../../src/device/index.ts';
import { loadConfig } from '../../src/model/config.ts';
import { KvCache } from '../../src/model/kv-cache.ts';
import { LlamaModel, type StepInput } from '../../src/model/llama.ts';
import { loadWeights } from '../../src/model/weights.ts';
import { backendsUnderTest, relErr } from '../ops/harness.ts';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'hf');
const MODELS = ['tiny-llama', 'tiny-llama31', 'tiny-mistral', 'tiny-qwen2'];
const BLOCK = 4;

interface Ref {
  prompt: string;
  ids: number[];
  last_logits: number[];
  greedy: number[];
}

/** A toy block allocator: hands out blocks from a shuffled free list. */
class Blocks {
  private free: number[];
  constructor(n: number, seed: number) {
    this.free = Array.from({ length: n }, (_, i) => i);
    let s = seed;
    for (let i = n - 1; i > 0; i--) {
      s = (s * 1103515245 + 12345) >>> 0;
      const j = s % (i + 1);
      [this.free[i], this.free[j]] = [this.free[j], this.free[i]];
    }
  }
  grow(table: number[], tokens: number): void {
    while (table.length * BLOCK < tokens) table.push(this.free.pop()!);
  }
}

/** A sequence's state between steps. */
interface Seq {
  ids: number[];
  table: number[];
  cached: number; // tokens whose K/V are in the cache
}

/** One step: each sequence contributes its tokens from `cached` up to `upto` (default: all). */
function stepOf(seqs: Seq[], blocks: Blocks, upto?: number[]): StepInput {
  const tokenIds: number[] = [];
  const positions: number[] = [];
  const slotMapping: number[] = [];
  const out: StepInput['seqs'] = [];
  seqs.forEach((q, i) => {
    const end = upto?.[i] ?? q.ids.length;
    blocks.grow(q.table, end);
    for (let p = q.cached; p < end; p++) {
      tokenIds.push(q.ids[p]);
      positions.push(p);
      slotMapping.push(q.table[Math.floor(p / BLOCK)] * BLOCK + (p % BLOCK));
    }
    out.push({ queryLen: end - q.cached, contextLen: end, blockTable: [...q.table] });
    q.cached = end;
  });
  return { tokenIds, positions, slotMapping, seqs: out };
}

describe.each(['cpu', ...backendsUnderTest()])('%s backend: forward vs HF transformers', (backend) => {
  let dev: Device;
  beforeAll(async () => {
    dev = await createDevice(backend);
  });
  afterAll(() => dev?.destroy());

  // native keeps each pool in one allocation (maxPoolParts 1): pools in parts are for the bindings of webgpu
  describe.each(MODELS.flatMap((m) => (backend === 'native' ? [[m, 1]] : [[m, 1], [m, 3]]) as (readonly [string, number])[]))('%s, pools in %i part(s)', (name, parts) => {
    const dir = join(FIXTURES, name);
    const refs: Ref[] = JSON.parse(readFileSync(join(dir, 'ref.json'), 'utf8')).refs;
    let model: LlamaModel;
    let cache: KvCache;
    beforeAll(async () => {
      const config = await loadConfig(dir);
      model = new LlamaModel(dev, config, await loadWeights(dev, dir, config, { progressBar: false }));
      // parts of 43 blocks: 43, 43, 42
      const maxPartBytes = parts > 1 ? 43 * (KvCache.bytesPerBlock(config, BLOCK, 'f32') / (2 * config.numLayers)) : undefined;
      cache = new KvCache(dev, config, { numBlocks: 128, blockSize: BLOCK, dtype: 'f32', maxPartBytes });
      expect(cache.keys[0].length).toBe(parts);
    });
    afterAll(() => {
      model?.free();
      cache?.free();
    });

    it('a batch of four prompts of different lengths: last-token logits match HF', async () => {
      const seqs: Seq[] = refs.map((r) => ({ ids: [...r.ids], table: [], cached: 0 }));
      const logits = await model.logits(stepOf(seqs, new Blocks(128, 1)), cache);
      const V = model.config.vocabSize;
      refs.forEach((r, i) => {
        expect(relErr(logits.subarray(i * V, (i + 1) * V), r.last_logits), `prompt ${i}`).toBeLessThan(1e-4);
      });
    });

    it('greedy continuations equal HF, decoding all prompts together after a chunked prefill', async () => {
      const blocks = new Blocks(128, 7);
      const seqs: Seq[] = refs.map((r) => ({ ids: [...r.ids], table: [], cached: 0 }));
      // prefill in two chunks: the first half of every prompt, then the rest
      await model.logits(stepOf(seqs, blocks, seqs.map((q) => Math.ceil(q.ids.length / 2))), cache);
      let next = await model.sample(stepOf(seqs, blocks), cache);
      const got: number[][] = refs.map(() => []);
      for (let t = 0; t < refs[0].greedy.length; t++) {
        seqs.forEach((q, i) => {
          got[i].push(next[i]);
          q.ids.push(next[i]);
        });
        if (t + 1 < refs[0].greedy.length) next = await model.sample(stepOf(seqs, blocks), cache);
      }
      expect(got).toEqual(refs.map((r) => r.greedy));
    });

    it.each([
      ['decodes ahead of a prompt', [0, 1, 2]],
      ['decodes ahead of a prompt and one more decode after it', [0, 1, 3]],
    ] as [string, number[]][])('a step of %s: split attention (paged + prefill) gives the logits of one prefill_attention, and HF', async (_, decoding) => {
      const blocks = new Blocks(128, 11);
      const prompt = [0, 1, 2, 3].find((i) => !decoding.includes(i))!;
      const seqs: Seq[] = refs.map((r) => ({ ids: [...r.ids], table: [], cached: 0 }));
      // the decoding prompts are cached; each then decodes its first greedy token while the other prompt is prefilled
      const dec = decoding.map((i) => seqs[i]);
      await model.logits(stepOf(dec, blocks), cache);
      decoding.forEach((i) => seqs[i].ids.push(refs[i].greedy[0]));
      const step = stepOf(seqs, blocks);
      const saved = model.splitDecodeRows;
      try {
        model.splitDecodeRows = 0;
        expect(model.splitRows(step)).toBe(0);
        const whole = await model.logits(step, cache);
        model.splitDecodeRows = 1;
        // the decode rows are cut to the binding alignment of the prefill part's q rows
        expect(model.splitRows(step)).toBeGreaterThan(0);
        const split = await model.logits(step, cache);
        expect(relErr(split, whole)).toBeLessThan(1e-5);
        const V = model.config.vocabSize;
        expect(relErr(split.subarray(prompt * V, (prompt + 1) * V), refs[prompt].last_logits)).toBeLessThan(1e-4);
      } finally {
        model.splitDecodeRows = saved;
      }
    });
  });
});

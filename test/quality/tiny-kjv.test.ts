// The embedded default model (models/tiny-kjv, trained by scripts/train_tiny.py) against what HF
// transformers measured from the same f16 weights in f32 (its reference.json): the perplexity of
// held-out King James text within 1%, and greedy continuations token for token, on the CPU
// reference and on every backend under test. A kernel that is subtly wrong (a norm off by a
// little, a rope angle off at long positions) still yields text, but not this perplexity.
// PARALLM_TINY_MODEL points the tests at another model directory that has a reference.json.

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Device, createDevice } from '../../src/device/index.ts';
import { loadConfig } from '../../src/model/config.ts';
import { KvCache } from '../../src/model/kv-cache.ts';
import { LlamaModel, type StepInput } from '../../src/model/llama.ts';
import { loadWeights } from '../../src/model/weights.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { backendsUnderTest } from '../ops/harness.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const DIR = process.env.PARALLM_TINY_MODEL ?? join(ROOT, 'models', 'tiny-kjv');
const BLOCK = 16;

interface Reference {
  heldout: { windows: number[][]; nll: number[]; count: number[]; perplexity: number };
  greedy: { new_tokens: number; prompts: { prompt: string; ids: number[]; greedy: number[]; text: string; min_margin: number }[] };
}

function readReference(): Reference {
  const path = join(DIR, 'reference.json');
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    // no skip: a package without its default model is broken
    throw new Error(`cannot read ${path} (${(e as Error).message}): the embedded model must be in models/tiny-kjv (scripts/train_tiny.py writes it)`);
  }
}
const ref = readReference();

/** One sequence from a fresh context: tokens 0..n-1 in blocks 0, 1, ... */
function prefill(ids: number[]): StepInput {
  const positions = ids.map((_, i) => i);
  const blockTable = Array.from({ length: Math.ceil(ids.length / BLOCK) }, (_, b) => b);
  return { tokenIds: ids, positions, slotMapping: positions, seqs: [{ queryLen: ids.length, contextLen: ids.length, blockTable }] };
}

/** Summed -log p(ids[i + 1] | ids[..i]) over rows of logits [n - 1, vocab], in float64. */
function nll(logits: Float32Array, ids: number[], vocab: number): number {
  let sum = 0;
  for (let i = 0; i + 1 < ids.length; i++) {
    const row = logits.subarray(i * vocab, (i + 1) * vocab);
    let max = -Infinity;
    for (const x of row) max = Math.max(max, x);
    let z = 0;
    for (const x of row) z += Math.exp(x - max);
    sum += max + Math.log(z) - row[ids[i + 1]];
  }
  return sum;
}

it('the tokenizer encodes each reference prompt to the ids transformers used', async () => {
  const tok = await Tokenizer.load(DIR);
  for (const p of ref.greedy.prompts) expect(tok.encode(p.prompt), p.prompt).toEqual(p.ids);
});

describe.each(['cpu', ...backendsUnderTest()])('%s backend: the embedded model vs transformers', (backend) => {
  let dev: Device;
  let model: LlamaModel;
  let cache: KvCache;
  beforeAll(async () => {
    dev = await createDevice(backend);
    const config = await loadConfig(DIR);
    model = new LlamaModel(dev, config, await loadWeights(dev, DIR, config, { progressBar: false }));
    const longest = Math.max(...ref.heldout.windows.map((w) => w.length), ...ref.greedy.prompts.map((p) => p.ids.length + p.greedy.length));
    cache = new KvCache(dev, config, { numBlocks: ref.greedy.prompts.length * Math.ceil(longest / BLOCK), blockSize: BLOCK, dtype: 'f32' });
  });
  afterAll(() => {
    model?.free();
    cache?.free();
    dev?.destroy();
  });

  it('held-out perplexity within 1% of transformers', async () => {
    const V = model.config.vocabSize;
    let sum = 0;
    let count = 0;
    for (const w of ref.heldout.windows) {
      const logits = await model.logits(prefill(w), cache, Array.from({ length: w.length - 1 }, (_, i) => i));
      sum += nll(logits, w, V);
      count += w.length - 1;
    }
    expect(count).toBe(ref.heldout.count.reduce((a, b) => a + b, 0));
    const ppl = Math.exp(sum / count);
    expect(Math.abs(ppl / ref.heldout.perplexity - 1), `perplexity ${ppl} vs transformers ${ref.heldout.perplexity}`).toBeLessThan(0.01);
  });

  it('greedy continuations of every prompt equal transformers, decoded together', async () => {
    const prompts = ref.greedy.prompts;
    const per = cache.numBlocks / prompts.length;
    const seqs = prompts.map((p, i) => ({ ids: [...p.ids], table: Array.from({ length: per }, (_, b) => i * per + b), cached: 0 }));
    // one step: every sequence's uncached tokens (the whole prompt first, then one token each)
    const step = (): StepInput => {
      const tokenIds: number[] = [];
      const positions: number[] = [];
      const slotMapping: number[] = [];
      for (const q of seqs) {
        for (let p = q.cached; p < q.ids.length; p++) {
          tokenIds.push(q.ids[p]);
          positions.push(p);
          slotMapping.push(q.table[Math.floor(p / BLOCK)] * BLOCK + (p % BLOCK));
        }
      }
      const out = seqs.map((q) => ({ queryLen: q.ids.length - q.cached, contextLen: q.ids.length, blockTable: q.table }));
      for (const q of seqs) q.cached = q.ids.length;
      return { tokenIds, positions, slotMapping, seqs: out };
    };
    for (let t = 0; t < ref.greedy.new_tokens; t++) {
      const next = await model.sample(step(), cache);
      seqs.forEach((q, i) => q.ids.push(next[i]));
    }
    expect(seqs.map((q, i) => q.ids.slice(prompts[i].ids.length))).toEqual(prompts.map((p) => p.greedy));
  });
});

it('`parallm generate` prints the widest-margin prompt\'s greedy continuation, from any directory', async () => {
  // the widest-margin prompt whose continuation has no end-of-sequence token (printed text skips it)
  const eos = (await loadConfig(DIR)).eosTokenIds;
  const p = ref.greedy.prompts.filter((x) => !x.greedy.some((id) => eos.includes(id))).sort((a, b) => b.min_margin - a.min_margin)[0];
  expect(p, 'a reference prompt whose greedy continuation does not end the sequence').toBeDefined();
  const tok = await Tokenizer.load(DIR);
  const want = tok.decode([...p.ids, ...p.greedy]).slice(tok.decode(p.ids).length);
  // without --model: the embedded model, found from the package, not the working directory
  const model = process.env.PARALLM_TINY_MODEL ? ['--model', DIR] : [];
  const args = [join(ROOT, 'bin', 'parallm.js'), 'generate', ...model, '--backend', 'cpu', '--max-tokens', String(p.greedy.length), '--ignore-eos', p.prompt];
  const { stdout } = await promisify(execFile)('node', args, { cwd: tmpdir(), timeout: 120_000 });
  expect(stdout).toBe(want + '\n');
});

// `parallm generate`: one-off prompts through a model directory, streamed to the terminal.
// All prompts run together as one batch (prefill in one step, then one decode step per token)
// over a paged KV cache; the continuous-batching engine replaces this loop in src/engine.

import { createDevice } from '../device/index.ts';
import { loadConfig } from '../model/config.ts';
import { KvCache } from '../model/kv-cache.ts';
import { LlamaModel, type StepInput } from '../model/llama.ts';
import { loadWeights } from '../model/weights.ts';
import { IncrementalDetokenizer, Tokenizer } from '../tokenizer/index.ts';

export interface GenerateOptions {
  model: string;
  backend: string;
  maxTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  chat?: boolean;
  ignoreEos?: boolean;
  blockSize: number;
}

/** mulberry32, seeded per sequence so that a prompt's draws do not depend on the batch */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function generate(prompts: string[], o: GenerateOptions, write: (s: string) => void = (s) => process.stdout.write(s)): Promise<string[]> {
  const device = await createDevice(o.backend);
  const config = await loadConfig(o.model);
  const tokenizer = await Tokenizer.load(o.model);
  const model = new LlamaModel(device, config, await loadWeights(device, o.model, config));
  const inputs = prompts.map((p) => (o.chat ? (tokenizer.applyChatTemplate([{ role: 'user', content: p }], { tokenize: true }) as number[]) : tokenizer.encode(p)));
  const B = o.blockSize;
  const perSeq = Math.ceil((Math.max(...inputs.map((x) => x.length)) + o.maxTokens) / B);
  const cache = new KvCache(device, config, { numBlocks: perSeq * prompts.length, blockSize: B, dtype: 'f16' });
  const seqs = inputs.map((ids, i) => ({
    ids: [...ids],
    table: Array.from({ length: perSeq }, (_, j) => i * perSeq + j),
    cached: 0,
    done: false,
    detok: new IncrementalDetokenizer(tokenizer, ids),
    text: '',
    rand: prng(o.seed + i),
  }));
  const stream = prompts.length === 1;
  const eos = new Set(o.ignoreEos ? [] : tokenizer.eosTokenIds);
  try {
    for (let t = 0; t < o.maxTokens; t++) {
      const live = seqs.filter((q) => !q.done);
      if (!live.length) break;
      const step: StepInput = { tokenIds: [], positions: [], slotMapping: [], seqs: [] };
      for (const q of live) {
        for (let p = q.cached; p < q.ids.length; p++) {
          (step.tokenIds as number[]).push(q.ids[p]);
          (step.positions as number[]).push(p);
          (step.slotMapping as number[]).push(q.table[Math.floor(p / B)] * B + (p % B));
        }
        step.seqs.push({ queryLen: q.ids.length - q.cached, contextLen: q.ids.length, blockTable: q.table });
        q.cached = q.ids.length;
      }
      const next = await model.sample(step, cache, {
        temperature: live.map(() => o.temperature),
        topK: live.map(() => o.topK),
        topP: live.map(() => o.topP),
        draws: live.map((q) => q.rand()),
      });
      live.forEach((q, i) => {
        const id = next[i];
        if (eos.has(id)) {
          q.done = true;
          return;
        }
        q.ids.push(id);
        const piece = q.detok.push(id);
        q.text += piece;
        if (stream) write(piece);
      });
    }
    for (const q of seqs) {
      const tail = q.detok.flush();
      q.text += tail;
      if (stream) write(tail + '\n');
    }
    if (!stream) seqs.forEach((q, i) => write(`[${i}] ${prompts[i]}${q.text}\n`));
    return seqs.map((q) => q.text);
  } finally {
    cache.free();
    model.free();
    device.destroy();
  }
}

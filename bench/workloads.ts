// Benchmark workloads, defined once and seeded (ARCHITECTURE.md, "Benchmark workloads"):
// `fixed` (every request input-len prompt tokens and output-len output tokens, EOS ignored)
// and `sharegpt-shaped` (lengths shaped like ShareGPT after vLLM's filter). No ShareGPT file is
// reachable from the build machines, so the default is synthesized from a seeded distribution
// and says so; `--dataset FILE` reads a real ShareGPT JSON when a user has one.

import { readFileSync } from 'node:fs';
import { mulberry32 } from '../src/util/prng.ts';

export interface BenchRequest {
  promptIds: number[];
  outputLen: number;
}

export interface Workload {
  name: string;
  /** How the requests were made, for the result JSON. */
  source: string;
  requests: BenchRequest[];
}

/** Random prompt token ids, avoiding the first ids (specials in LLaMA vocabularies). */
function prompt(r: () => number, len: number, vocab: number): number[] {
  return Array.from({ length: len }, () => 3 + Math.floor(r() * (vocab - 3)));
}

export function fixedWorkload(numRequests: number, inputLen: number, outputLen: number, vocab: number, seed = 0): Workload {
  const r = mulberry32(seed);
  return {
    name: `fixed-${inputLen}-${outputLen}`,
    source: `${numRequests} requests of ${inputLen} random prompt tokens and ${outputLen} output tokens (seed ${seed})`,
    requests: Array.from({ length: numRequests }, () => ({ promptIds: prompt(r, inputLen, vocab), outputLen })),
  };
}

/** A log-normal length with the given median, clamped to [lo, hi]. */
function logNormal(r: () => number, median: number, sigma: number, lo: number, hi: number): number {
  const z = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return Math.max(lo, Math.min(hi, Math.round(median * Math.exp(sigma * z))));
}

/**
 * Synthetic ShareGPT-shaped lengths: vLLM's filter (prompt >= 4, output >= 4, prompt <= 1024,
 * prompt + output <= 2048) over log-normal prompt and output lengths whose medians (~195 and
 * ~155 tokens) and spread give about 480 total tokens per request on average, prompts somewhat
 * longer than outputs, as ShareGPT has with the LLaMA-2 tokenizer.
 */
export function sharegptShapedWorkload(numRequests: number, vocab: number, seed = 0): Workload {
  const r = mulberry32(seed);
  const requests: BenchRequest[] = [];
  while (requests.length < numRequests) {
    const p = logNormal(r, 195, 1.0, 1, 4096);
    const o = logNormal(r, 155, 0.9, 1, 4096);
    if (p < 4 || o < 4 || p > 1024 || p + o > 2048) continue;
    requests.push({ promptIds: prompt(r, p, vocab), outputLen: o });
  }
  return { name: 'sharegpt-shaped', source: `synthesized ShareGPT-shaped lengths (no dataset given), seed ${seed}`, requests };
}

/**
 * A real ShareGPT JSON ([{conversations: [{from, value}, ...]}, ...]): the first human turn is
 * the prompt and the next turn's length is the output length, filtered as vLLM filters them.
 */
export function sharegptDataset(file: string, numRequests: number, encode: (text: string) => number[], seed = 0): Workload {
  const data = JSON.parse(readFileSync(file, 'utf8')) as { conversations?: { from: string; value: string }[] }[];
  const r = mulberry32(seed);
  const convs = data.filter((d) => (d.conversations?.length ?? 0) >= 2);
  // a seeded shuffle, as vLLM samples the dataset
  for (let i = convs.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [convs[i], convs[j]] = [convs[j], convs[i]];
  }
  const requests: BenchRequest[] = [];
  for (const c of convs) {
    if (requests.length >= numRequests) break;
    const promptIds = encode(c.conversations![0].value);
    const outputLen = encode(c.conversations![1].value).length;
    if (promptIds.length < 4 || outputLen < 4 || promptIds.length > 1024 || promptIds.length + outputLen > 2048) continue;
    requests.push({ promptIds, outputLen });
  }
  return { name: 'sharegpt', source: `${file}, ${requests.length} conversations after vLLM's filter (seed ${seed})`, requests };
}

export function workloadStats(w: Workload): { requests: number; promptTokens: number; outputTokens: number; meanTotal: number } {
  const promptTokens = w.requests.reduce((s, q) => s + q.promptIds.length, 0);
  const outputTokens = w.requests.reduce((s, q) => s + q.outputLen, 0);
  return { requests: w.requests.length, promptTokens, outputTokens, meanTotal: (promptTokens + outputTokens) / Math.max(1, w.requests.length) };
}

// The LLaMA-2-7B-shape check on the GPU machine: loads the checkpoint that
// scripts/make_7b_reference.py wrote (13.5 GB of f16 safetensors), measures the load time, and
// compares parallm's last-token logits with HF transformers' float32 logits, with the f16
// matrix units (prefill matmuls on subgroup matrices, a cast to f16) and with f32 compute.
//
//   npx tsx bench/compare-7b.ts /tmp/llama7b [--backend webgpu] [--out dir]

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createDevice } from '../src/device/index.ts';
import { loadConfig } from '../src/model/config.ts';
import { KvCache } from '../src/model/kv-cache.ts';
import { LlamaModel } from '../src/model/llama.ts';
import { loadWeights } from '../src/model/weights.ts';

const argv = process.argv.slice(2);
const dir = argv[0];
const opt = (flag: string, d: string) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : d);
const backend = opt('--backend', 'webgpu');
const outDir = opt('--out', '.');

interface Ref {
  ids: number[];
  last_logits: number[];
  last_logits_f64?: number[];
  hf_f32_relerr_vs_f64?: number;
  argmax: number;
}
const ref = JSON.parse(readFileSync(join(dir, 'ref.json'), 'utf8')) as { refs: Ref[]; save_s: number; gpu: string };

const dev = await createDevice(backend);
const config = await loadConfig(dir);
const t0 = performance.now();
const weights = await loadWeights(dev, dir, config, { progressBar: false });
const loadS = (performance.now() - t0) / 1000;
console.log(`loaded ${(weights.bytes / 1e9).toFixed(2)} GB in ${loadS.toFixed(1)} s (${(weights.bytes / 1e9 / loadS).toFixed(2)} GB/s)`);
const model = new LlamaModel(dev, config, weights);
const BLOCK = 16;
const caches = { f16: new KvCache(dev, config, { numBlocks: 64, blockSize: BLOCK, dtype: 'f16' }), f32: new KvCache(dev, config, { numBlocks: 64, blockSize: BLOCK, dtype: 'f32' }) };

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

const results: Record<string, unknown>[] = [];
for (const compute of ['f16 matrix units', 'f32'] as const) {
  // f32 compute: switch the matrix units off on this device, so prefill matmuls take the f32 kernels
  if (compute === 'f32') dev.info.features.subgroupMatrix = false;
  for (const kv of ['f16', 'f32'] as const) for (const r of ref.refs) {
    const cache = caches[kv];
    const n = r.ids.length;
    const table = Array.from({ length: Math.ceil(n / BLOCK) }, (_, i) => i);
    const step = {
      tokenIds: r.ids,
      positions: r.ids.map((_, i) => i),
      slotMapping: r.ids.map((_, i) => i),
      seqs: [{ queryLen: n, contextLen: n, blockTable: table }],
    };
    const t = performance.now();
    const logits = await model.logits(step, cache);
    const ms = performance.now() - t;
    let am = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[am]) am = i;
    const row = {
      compute,
      kvCache: kv,
      promptLen: n,
      relErr: relErr(logits, r.last_logits),
      // against transformers in float64, beside transformers' own float32 error
      relErrVsF64: r.last_logits_f64 ? relErr(logits, r.last_logits_f64) : undefined,
      hfF32RelErrVsF64: r.hf_f32_relerr_vs_f64,
      argmaxMatches: am === r.argmax,
      stepMs: Math.round(ms),
    };
    console.log(JSON.stringify(row));
    results.push(row);
  }
}
const out = { gpu: ref.gpu, device: dev.info.name, date: new Date().toISOString().slice(0, 10), commit: process.env.PARALLM_COMMIT ?? 'unknown', weightsGB: weights.bytes / 1e9, loadS, hfSaveS: ref.save_s, results };
writeFileSync(join(outDir, `compare-7b-${new Date().toISOString().slice(0, 10)}.json`), JSON.stringify(out, null, 2) + '\n');
model.free();
caches.f16.free();
caches.f32.free();
dev.destroy();
process.exit(0);

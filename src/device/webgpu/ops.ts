// Op planner of the webgpu backend: which kernel of shaders/ runs an op, with which flags,
// override constants, params and grid, and how ops over tensors larger than one binding are
// split into several dispatches.

import type { Support, Tensor } from '../device.ts';
import type { OpArgs, OpName } from '../ops.ts';
import { numel } from '../dtype.ts';
import { rows, tensorBytes } from '../tensor.ts';
import { attentionUnsupported, planCopyBlocks, planPagedAttention, planPrefillAttention, planQkvRopeCache, planReshapeAndCache } from './attention.ts';
import type { WebGpuDevice } from './backend.ts';
import { matmulUnsupported, pickMatmul, planMatmul } from './matmul.ts';
import { type Dispatch, grid, rowBlock, sameTensor, weightFlag } from './plan.ts';
import { planRmsNorm, planRope, planSiluAndMul } from './rowops.ts';
import { planApplyPenalties, planLogprobs } from './sampling.ts';

export type { Dispatch };
export { grid, pickMatmul };

const no = (reason: string): Support => ({ ok: false, reason });
const OK: Support = { ok: true };

/** Backend limits beyond the shared shape rules (checkOp has passed). */
export function supportsOp<K extends OpName>(dev: WebGpuDevice, name: K, args: OpArgs[K]): Support {
  const a = args as any;
  if (name === 'embedding' && a.table.dtype !== 'f32' && a.table.shape[1] % 2) return no('embedding: 16-bit tables need an even hidden size');
  if (name === 'embedding' && tensorBytes(a.table) / a.table.shape[0] > dev.info.maxBindingBytes) return no('embedding: a single table row exceeds the binding limit');
  if (name === 'rms_norm' && a.weight.dtype !== 'f32' && a.x.shape[1] % 2) return no('rms_norm: 16-bit weights need an even hidden size');
  if (name === 'copy' && a.x.shape[0] % 4) return no('copy: length must be a multiple of 4');
  // 16-bit activations are the native backend's (they spare its cast before cuBLAS); the WGSL
  // kernels take and write f32 activations, and matmul_sgmat casts and pads its own copy of a
  if ((name === 'rms_norm' || name === 'silu_and_mul') && a.out.dtype !== 'f32') return no(`${name}: the WGSL kernel writes f32 activations, not ${a.out.dtype}`);
  if (name === 'matmul' && a.a.dtype !== 'f32') return no(`matmul: the WGSL kernels take f32 activations, not ${a.a.dtype}`);
  const attention = attentionUnsupported(dev, name, args);
  if (attention) return no(attention);
  if (name === 'matmul') {
    const why = matmulUnsupported(dev, args as OpArgs['matmul'], pickMatmul(dev, args as OpArgs['matmul']));
    if (why) return no(`matmul: ${why}`);
  }
  return OK;
}

export function planOp<K extends OpName>(dev: WebGpuDevice, name: K, args: OpArgs[K]): Dispatch[] {
  const a = args as any;
  switch (name) {
    case 'embedding': {
      const { ids, table, out } = a as OpArgs['embedding'];
      const [n] = ids.shape;
      const [vocab, hidden] = table.shape;
      const block = rowBlock(dev, table);
      const plans: Dispatch[] = [];
      for (let row0 = 0; row0 < vocab; row0 += block) {
        const nb = Math.min(block, vocab - row0);
        const tensors = { ids, table: rows(table, row0, nb), out };
        plans.push({ file: 'embedding.wgsl', flags: [weightFlag(table)], overrides: {}, tensors, params: { n, hidden, vocab, row0, rows: nb }, grid: grid(n) });
      }
      return plans;
    }
    case 'rms_norm':
      return planRmsNorm(dev, a as OpArgs['rms_norm']);
    case 'rope':
      return planRope(dev, a as OpArgs['rope']);
    case 'silu_and_mul':
      return planSiluAndMul(dev, a as OpArgs['silu_and_mul']);
    case 'softmax': {
      const { x, out } = a as OpArgs['softmax'];
      const [n, v] = x.shape;
      const inPlace = sameTensor(x, out);
      const tensors: Record<string, Tensor> = inPlace ? { out } : { x, out };
      return [{ file: 'softmax.wgsl', flags: inPlace ? ['IN_PLACE'] : [], overrides: {}, tensors, params: { n, v }, grid: grid(n) }];
    }
    case 'argmax': {
      const { x, out } = a as OpArgs['argmax'];
      const [n, v] = x.shape;
      return [{ file: 'argmax.wgsl', flags: [], overrides: {}, tensors: { x, out }, params: { n, v }, grid: grid(n) }];
    }
    case 'sample': {
      const s = a as OpArgs['sample'];
      const [n, v] = s.logits.shape;
      const tensors = { logits: s.logits, temperature: s.temperature, top_k: s.topK, top_p: s.topP, min_p: s.minP, draws: s.draws, out: s.out };
      return [{ file: 'sample.wgsl', flags: [], overrides: {}, tensors, params: { n, v }, grid: grid(n) }];
    }
    case 'apply_penalties':
      return planApplyPenalties(dev, a as OpArgs['apply_penalties']);
    case 'logprobs':
      return planLogprobs(dev, a as OpArgs['logprobs']);
    case 'copy': {
      const { x, out } = a as OpArgs['copy'];
      const n4 = x.shape[0] / 4;
      return [{ file: 'copy.wgsl', flags: [], overrides: {}, tensors: { x, out }, params: { n4 }, grid: grid(Math.min(Math.ceil(n4 / 256), 4096)) }];
    }
    case 'resolve_tokens': {
      const { ids, sampled } = a as OpArgs['resolve_tokens'];
      const n = numel(ids.shape);
      return [{ file: 'resolve_tokens.wgsl', flags: [], overrides: {}, tensors: { ids, sampled }, params: { n, m: sampled.shape[0] }, grid: grid(Math.max(1, Math.ceil(n / 256))) }];
    }
    case 'copy_blocks':
      return planCopyBlocks(dev, a as OpArgs['copy_blocks']);
    case 'matmul':
      return planMatmul(dev, a as OpArgs['matmul']);
    case 'reshape_and_cache':
      return planReshapeAndCache(dev, a as OpArgs['reshape_and_cache']);
    case 'qkv_rope_cache':
      return planQkvRopeCache(dev, a as OpArgs['qkv_rope_cache']);
    case 'paged_attention':
      return planPagedAttention(dev, a as OpArgs['paged_attention']);
    case 'prefill_attention':
      return planPrefillAttention(dev, a as OpArgs['prefill_attention']);
  }
  throw new Error(`webgpu: no plan for op ${name}`);
}


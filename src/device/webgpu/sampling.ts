// Planner of the logits-side ops around sampling: apply_penalties (two dispatches over the ids,
// shaders/apply_penalties.wgsl) and logprobs (one workgroup per row, shaders/logprobs.wgsl).
// The sampling kernel itself is planned in ./ops.ts.

import type { Tensor } from '../device.ts';
import type { OpArgs } from '../ops.ts';
import { numel } from '../dtype.ts';
import type { WebGpuDevice } from './backend.ts';
import { type Dispatch, grid } from './plan.ts';

/**
 * A binding for an id list of width 0: the kernel never reads it, but WebGPU needs a buffer
 * (one per list: bindings sharing a buffer would all be made read_write, and then overlap).
 */
function orEmpty(dev: WebGpuDevice, t: Tensor, name: string): Tensor {
  return numel(t.shape) ? t : dev.scratch(`empty ${name}`, [4], 'i32');
}

export function planApplyPenalties(dev: WebGpuDevice, a: OpArgs['apply_penalties']): Dispatch[] {
  const [n, v] = a.logits.shape;
  const widths = { max_prompt: a.promptIds.shape[1], max_out: a.outputIds.shape[1], max_banned: a.bannedIds.shape[1] };
  const slots = widths.max_prompt + widths.max_out + widths.max_banned;
  if (slots === 0) return [];
  // counts: [n, v] u32, zero between calls (see the kernel)
  const counts = dev.scratch('penalty_counts', [n, v], 'u32');
  const ids = { prompt_ids: orEmpty(dev, a.promptIds, 'prompt_ids'), output_ids: orEmpty(dev, a.outputIds, 'output_ids'), banned_ids: orEmpty(dev, a.bannedIds, 'banned_ids'), counts };
  const params = { n, v, ...widths };
  const g = grid(Math.ceil((n * slots) / 256));
  return [
    { file: 'apply_penalties.wgsl', flags: [], overrides: {}, tensors: ids, params, grid: g },
    {
      file: 'apply_penalties.wgsl',
      flags: ['APPLY'],
      overrides: {},
      tensors: { ...ids, logits: a.logits, repetition: a.repetition, frequency: a.frequency, presence: a.presence },
      params,
      grid: g,
    },
  ];
}

export function planLogprobs(dev: WebGpuDevice, a: OpArgs['logprobs']): Dispatch[] {
  const [n, v] = a.logits.shape;
  const top = a.topN > 0;
  const tensors: Record<string, Tensor> = { logits: a.logits, ids: a.ids, out_logprob: a.outLogprob, ...(top ? { out_top_ids: a.outTopIds!, out_top_logprobs: a.outTopLogprobs! } : {}) };
  return [{ file: 'logprobs.wgsl', flags: top ? ['TOP'] : [], overrides: {}, tensors, params: { n, v, top_n: a.topN }, grid: grid(n) }];
}

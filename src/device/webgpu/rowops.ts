// Planning of the row-wise ops rms_norm, rope and silu_and_mul: kernel flags, workgroup shape
// and grid. Each planner takes an optional launch shape so that bench/lab-rowops.ts can time
// variants of the very dispatches the op runs; the defaults are the production choice.

import type { Tensor } from '../device.ts';
import type { OpArgs } from '../ops.ts';
import type { WebGpuDevice } from './backend.ts';
import { type Dispatch, grid, sameTensor, weightFlag } from './plan.ts';

/**
 * Which kernels plan the row-wise ops: 'new' (shaders/{rms_norm,rope,silu_and_mul}.wgsl) or
 * 'old', the kernels before branch rowops (shaders/lab/*_v1.wgsl), kept for A/B runs on a GPU:
 * PARALLM_ROWOPS=old, read once at load.
 */
export type RowOpsKernels = 'new' | 'old';
export const ROWOPS: RowOpsKernels = process.env.PARALLM_ROWOPS === 'old' ? 'old' : 'new';

const MAX_GRID_Y = 65535;
const roundUp = (x: number, m: number) => Math.ceil(x / m) * m;

export interface RmsNormShape {
  kernels?: RowOpsKernels;
  /** threads per row (a multiple of 32) */
  wg?: number;
  /** elements (vec4s) per thread; WG * VPT must cover the row */
  vpt?: number;
  /** subgroupAdd for the sum of squares (default: where the adapter has subgroups) */
  subgroups?: boolean;
  /** at most this many workgroups, each striding over rows (default: one per row) */
  maxWorkgroups?: number;
  /** with maxWorkgroups: load the next row before reducing the current one */
  pipeline?: boolean;
}

export function planRmsNorm(dev: WebGpuDevice, args: OpArgs['rms_norm'], shape: RmsNormShape = {}): Dispatch[] {
  const { x, weight, out, residual, eps } = args;
  const [n, hidden] = x.shape;
  const inPlace = sameTensor(x, out);
  const vec4 = hidden % 4 === 0;
  const flags = [weightFlag(weight), ...(residual ? ['RESIDUAL'] : []), ...(inPlace ? ['IN_PLACE'] : []), ...(vec4 ? ['VEC4'] : [])];
  const tensors: Record<string, Tensor> = { weight, out, ...(inPlace ? {} : { x }), ...(residual ? { residual } : {}) };
  const params = { n, hidden, eps };
  const units = vec4 ? hidden / 4 : hidden;
  if ((shape.kernels ?? ROWOPS) === 'old') {
    const WG = 256;
    return [{ file: 'lab/rms_norm_v1.wgsl', flags, overrides: { WG, VPT: Math.ceil(units / WG) }, tensors, params, grid: grid(n) }];
  }
  // a workgroup as wide as the row at four elements (vec4s) a thread, 64 to 1024 threads
  const maxWg = Math.min(1024, dev.gpu.limits.maxComputeInvocationsPerWorkgroup, dev.gpu.limits.maxComputeWorkgroupSizeX);
  const WG = shape.wg ?? Math.min(maxWg, Math.max(64, roundUp(Math.ceil(units / 4), 32)));
  const VPT = shape.vpt ?? Math.ceil(units / WG);
  if (WG * VPT < units) throw new Error(`rms_norm: ${WG} threads x ${VPT} do not cover a row of ${units}`);
  const subgroups = shape.subgroups ?? dev.info.features.subgroups;
  if (subgroups) flags.push('SUBGROUPS');
  if (shape.pipeline) flags.push('PIPELINE');
  const workgroups = Math.min(n, shape.maxWorkgroups ?? n);
  return [{ file: 'rms_norm.wgsl', flags, overrides: { WG, VPT }, tensors, params, grid: grid(workgroups) }];
}

export interface RopeShape {
  kernels?: RowOpsKernels;
  wg?: number;
  /** heads per thread */
  ipt?: number;
  /** at most this many workgroups along the tokens; they stride over the rest */
  maxTokenGroups?: number;
}

export function planRope(dev: WebGpuDevice, args: OpArgs['rope'], shape: RopeShape = {}): Dispatch[] {
  const { x, positions, cosSin, numHeads, headSize, interleaved } = args;
  const [n, width] = x.shape;
  const [maxPos, rot] = cosSin.shape;
  const halfRot = rot / 2;
  const vec4 = !interleaved && width % 4 === 0 && headSize % 4 === 0 && halfRot % 4 === 0;
  const flags = interleaved ? ['INTERLEAVED'] : vec4 ? ['VEC4'] : [];
  const tensors = { x, positions, cos_sin: cosSin };
  const params = { n, width, num_heads: numHeads, head_size: headSize, half_rot: halfRot, max_pos: maxPos };
  if ((shape.kernels ?? ROWOPS) === 'old') {
    const threads = (n * numHeads * halfRot) / (vec4 ? 4 : 1);
    return [{ file: 'lab/rope_v1.wgsl', flags, overrides: {}, tensors, params, grid: grid(Math.ceil(threads / 256)) }];
  }
  const HQ = vec4 ? halfRot / 4 : halfRot;
  const WG = shape.wg ?? 256;
  const hpw = Math.floor(WG / Math.min(HQ, WG)); // as the kernel's HPW
  const IPT = shape.ipt ?? Math.min(4, Math.ceil(numHeads / hpw));
  const gx = Math.max(1, Math.ceil(numHeads / (hpw * IPT)));
  return [{ file: 'rope.wgsl', flags, overrides: { WG, HQ, IPT }, tensors, params, grid: [gx, Math.max(1, Math.min(n, MAX_GRID_Y, shape.maxTokenGroups ?? Infinity))] }];
}

export interface SiluShape {
  kernels?: RowOpsKernels;
  wg?: number;
  /** columns (vec4s) per thread */
  u?: number;
  /** at most this many workgroups along a row / along the rows; they stride over the rest */
  maxColumnGroups?: number;
  maxRowGroups?: number;
  /** lab ablation: no exponential (wrong output) */
  noExp?: boolean;
}

export function planSiluAndMul(dev: WebGpuDevice, args: OpArgs['silu_and_mul'], shape: SiluShape = {}): Dispatch[] {
  const { x, out } = args;
  const [n, inter] = out.shape;
  const vec = inter % 4 === 0 ? 4 : 1;
  const flags = vec === 4 ? ['VEC4'] : [];
  const params = { n, inter: inter / vec };
  if ((shape.kernels ?? ROWOPS) === 'old') {
    const threads = (n * inter) / vec;
    return [{ file: 'lab/silu_and_mul_v1.wgsl', flags, overrides: {}, tensors: { x, out }, params, grid: grid(Math.ceil(threads / 256)) }];
  }
  const WG = shape.wg ?? 256;
  const U = shape.u ?? 2;
  if (shape.noExp) flags.push('NOEXP');
  const gx = Math.max(1, Math.min(Math.ceil(params.inter / (WG * U)), MAX_GRID_Y, shape.maxColumnGroups ?? Infinity));
  const gy = Math.max(1, Math.min(n, MAX_GRID_Y, shape.maxRowGroups ?? Infinity));
  return [{ file: 'silu_and_mul.wgsl', flags, overrides: { WG, U }, tensors: { x, out }, params, grid: [gx, gy] }];
}

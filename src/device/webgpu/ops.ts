// Op planner of the webgpu backend: which kernel of shaders/ runs an op, with which flags,
// override constants, params and grid, and how ops over tensors larger than one binding are
// split into several dispatches.

import { type Support, type Tensor, TensorTooLargeError } from '../device.ts';
import type { MatmulKernel, OpArgs, OpName } from '../ops.ts';
import { rows, tensorBytes } from '../tensor.ts';
import type { WebGpuDevice } from './backend.ts';

/** One kernel launch: the kernel by file, flags and overrides; tensors by binding name. */
export interface Dispatch {
  file: string;
  flags: string[];
  overrides: Record<string, number>;
  tensors: Record<string, Tensor>;
  params: Record<string, number>;
  grid: [number, number?, number?];
}

const MAX_GRID = 65535;
/** Rows of a up to which matmul uses the memory-bound gemv kernel. */
export const GEMV_MAX_ROWS = 16;

/** A grid of `count` workgroups, folded into two dimensions past the per-dimension limit. */
export function grid(count: number): [number, number] {
  if (count <= MAX_GRID) return [Math.max(1, count), 1];
  const y = Math.ceil(count / MAX_GRID);
  return [Math.ceil(count / y), y];
}

function sameTensor(a: Tensor, b: Tensor): boolean {
  return a.buffer === b.buffer && a.offset === b.offset;
}

function weightFlag(t: Tensor): string {
  return t.dtype === 'f32' ? 'W_F32' : t.dtype === 'bf16' ? 'W_BF16' : 'W_F16';
}

const no = (reason: string): Support => ({ ok: false, reason });
const OK: Support = { ok: true };

/** Backend limits beyond the shared shape rules (checkOp has passed). */
export function supportsOp<K extends OpName>(dev: WebGpuDevice, name: K, args: OpArgs[K]): Support {
  const a = args as any;
  if (name === 'embedding' && a.table.dtype !== 'f32' && a.table.shape[1] % 2) return no('embedding: 16-bit tables need an even hidden size');
  if (name === 'embedding' && tensorBytes(a.table) / a.table.shape[0] > dev.info.maxBindingBytes) return no('embedding: a single table row exceeds the binding limit');
  if (name === 'rms_norm' && a.weight.dtype !== 'f32' && a.x.shape[1] % 2) return no('rms_norm: 16-bit weights need an even hidden size');
  if (name === 'copy' && a.x.shape[0] % 4) return no('copy: length must be a multiple of 4');
  if (name === 'matmul') {
    const kernel = pickMatmul(dev, args as OpArgs['matmul']);
    const k = a.a.shape[1];
    if (kernel === 'gemv' && (k % 8 || a.a.shape[0] > GEMV_MAX_ROWS)) return no(`matmul: gemv needs k % 8 == 0 and at most ${GEMV_MAX_ROWS} rows`);
    if (kernel === 'sgmat' && !dev.info.features.subgroupMatrix) return no('matmul: sgmat needs subgroup matrices (f16 16x16x16) on this adapter');
    if (kernel === 'sgmat' && k % 2 && a.w.dtype !== 'f32') return no('matmul: sgmat needs an even k for 16-bit weights');
    // w may be split by rows; every other tensor must fit one binding
    const rowBytes = tensorBytes(a.w) / a.w.shape[0];
    if (rowBytes > dev.info.maxBindingBytes) return no('matmul: a single weight row exceeds the binding limit');
  }
  return OK;
}

export function pickMatmul(dev: WebGpuDevice, a: OpArgs['matmul']): MatmulKernel {
  if (a.kernel) return a.kernel;
  const [m, k] = a.a.shape;
  if (m <= GEMV_MAX_ROWS && k % 8 === 0) return 'gemv';
  if (dev.info.features.subgroupMatrix && m >= 32 && (k % 2 === 0 || a.w.dtype === 'f32')) return 'sgmat';
  return 'tiled';
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
    case 'rms_norm': {
      const { x, weight, out, residual, eps } = a as OpArgs['rms_norm'];
      const [n, hidden] = x.shape;
      const inPlace = sameTensor(x, out);
      const flags = [weightFlag(weight), ...(residual ? ['RESIDUAL'] : []), ...(inPlace ? ['IN_PLACE'] : [])];
      const tensors: Record<string, Tensor> = { weight, out, ...(inPlace ? {} : { x }), ...(residual ? { residual } : {}) };
      return [{ file: 'rms_norm.wgsl', flags, overrides: {}, tensors, params: { n, hidden, eps }, grid: grid(n) }];
    }
    case 'rope': {
      const { x, positions, invFreq, numHeads, headSize, interleaved } = a as OpArgs['rope'];
      const [n, width] = x.shape;
      const halfRot = invFreq.shape[0];
      const threads = n * numHeads * halfRot;
      return [
        {
          file: 'rope.wgsl',
          flags: interleaved ? ['INTERLEAVED'] : [],
          overrides: {},
          tensors: { x, positions, inv_freq: invFreq },
          params: { n, width, num_heads: numHeads, head_size: headSize, half_rot: halfRot },
          grid: grid(Math.ceil(threads / 256)),
        },
      ];
    }
    case 'silu_and_mul': {
      const { x, out } = a as OpArgs['silu_and_mul'];
      const [n, inter] = out.shape;
      return [{ file: 'silu_and_mul.wgsl', flags: [], overrides: {}, tensors: { x, out }, params: { n, inter }, grid: grid(Math.ceil((n * inter) / 256)) }];
    }
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
      const tensors = { logits: s.logits, temperature: s.temperature, top_k: s.topK, top_p: s.topP, draws: s.draws, out: s.out };
      return [{ file: 'sample.wgsl', flags: [], overrides: {}, tensors, params: { n, v }, grid: grid(n) }];
    }
    case 'copy': {
      const { x, out } = a as OpArgs['copy'];
      const n4 = x.shape[0] / 4;
      return [{ file: 'copy.wgsl', flags: [], overrides: {}, tensors: { x, out }, params: { n4 }, grid: grid(Math.min(Math.ceil(n4 / 256), 4096)) }];
    }
    case 'matmul':
      return planMatmul(dev, a as OpArgs['matmul']);
  }
  throw new Error(`webgpu: no plan for op ${name}`);
}

/**
 * Splits w into row blocks that each fit one binding (an lm_head of a large vocabulary can
 * exceed it). a, bias and out are bound whole; each block writes its columns of out.
 */
function planMatmul(dev: WebGpuDevice, args: OpArgs['matmul']): Dispatch[] {
  const { a, w, bias, out } = args;
  const kernel = pickMatmul(dev, args);
  const [m, k] = a.shape;
  const n = w.shape[0];
  const block = rowBlock(dev, w);
  const plans: Dispatch[] = [];
  for (let n0 = 0; n0 < n; n0 += block) {
    const nb = Math.min(block, n - n0);
    const flags = [weightFlag(w), ...(bias ? ['BIAS'] : [])];
    const tensors: Record<string, Tensor> = { a, w: rows(w, n0, nb), out, ...(bias ? { bias } : {}) };
    const params = { m, n: nb, k, ldo: n, col0: n0 };
    if (kernel === 'gemv') {
      const cols = 4;
      plans.push({ file: 'matmul_gemv.wgsl', flags, overrides: { ROWS: m, COLS: cols }, tensors, params, grid: grid(Math.ceil(nb / cols)) });
    } else {
      const [tm, tn, file] = kernel === 'sgmat' ? [SG_TILE_M, SG_TILE_N, 'matmul_sgmat.wgsl'] : [64, 64, 'matmul_tiled.wgsl'];
      const tilesN = Math.ceil(nb / tn);
      plans.push({ file, flags, overrides: {}, tensors, params: { ...params, tiles_n: tilesN }, grid: grid(Math.ceil(m / tm) * tilesN) });
    }
  }
  return plans;
}

export const SG_TILE_M = 64;
export const SG_TILE_N = 64;

/** Rows per block of a 2-D tensor split so that each block fits one binding and starts aligned. */
function rowBlock(dev: WebGpuDevice, t: Tensor): number {
  const n = t.shape[0];
  const rowBytes = tensorBytes(t) / n;
  let block = Math.min(n, Math.floor(dev.info.maxBindingBytes / rowBytes));
  if (block < n) {
    const step = dev.info.bindingAlignment / gcd(dev.info.bindingAlignment, rowBytes);
    block = Math.floor(block / step) * step;
    if (block === 0) throw new TensorTooLargeError(`cannot split [${t.shape}] ${t.dtype} into aligned row blocks under ${dev.info.maxBindingBytes} bytes`);
  }
  return block;
}

function gcd(x: number, y: number): number {
  while (y) [x, y] = [y, x % y];
  return x;
}


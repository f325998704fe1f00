// Shared pieces of the webgpu op planners: the Dispatch record, grids, row blocks.

import { type Tensor, TensorTooLargeError, WEIGHT_TILE_ROWS } from '../device.ts';
import { alignedRows, tensorBytes } from '../tensor.ts';
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

/** A grid of `count` workgroups, folded into two dimensions past the per-dimension limit. */
export function grid(count: number): [number, number] {
  if (count <= MAX_GRID) return [Math.max(1, count), 1];
  const y = Math.ceil(count / MAX_GRID);
  return [Math.ceil(count / y), y];
}

export function sameTensor(a: Tensor, b: Tensor): boolean {
  return a.buffer === b.buffer && a.offset === b.offset;
}

export function weightFlag(t: Tensor): string {
  return t.dtype === 'f32' ? 'W_F32' : t.dtype === 'bf16' ? 'W_BF16' : 'W_F16';
}

/** W_TILED for a weight in the tiled layout (WebGpuDevice.packWeight), else nothing. */
export function layoutFlags(t: Tensor): string[] {
  return t.layout === 'tiled' ? ['W_TILED'] : [];
}

/** The flags a kernel that reads matmul weight t needs: its dtype's and its layout's. */
export function weightFlags(t: Tensor): string[] {
  return [weightFlag(t), ...layoutFlags(t)];
}

/** Rows per block of a 2-D tensor split so that each block fits one binding and starts aligned. */
export function rowBlock(dev: WebGpuDevice, t: Tensor): number {
  const n = t.shape[0];
  const rowBytes = tensorBytes(t) / n;
  let block = Math.min(n, Math.floor(dev.info.maxBindingBytes / rowBytes));
  // a packed weight's blocks are whole tiles, and its last tile is bound whole (padded)
  const tiled = t.layout === 'tiled';
  if (tiled && Math.ceil(block / WEIGHT_TILE_ROWS) * WEIGHT_TILE_ROWS * rowBytes > dev.info.maxBindingBytes) block = Math.floor(block / WEIGHT_TILE_ROWS) * WEIGHT_TILE_ROWS;
  if (block < n) {
    const step = tiled ? WEIGHT_TILE_ROWS : alignedRows(rowBytes, dev.info.bindingAlignment);
    block = Math.floor(block / step) * step;
    if (block === 0) throw new TensorTooLargeError(`cannot split [${t.shape}] ${t.dtype} into aligned row blocks under ${dev.info.maxBindingBytes} bytes`);
  }
  return block;
}


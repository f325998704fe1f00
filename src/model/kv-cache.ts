// The paged KV cache on the device: per layer, a K pool and a V pool of fixed-size blocks.
// Which block belongs to which sequence is the block manager's business (src/engine); here
// are only the pools and their sizes.

import type { Device, Tensor } from '../device/device.ts';
import { DTYPE_BYTES } from '../device/dtype.ts';
import { empty } from '../device/tensor.ts';
import type { ModelConfig } from './config.ts';

export type KvDType = 'f16' | 'f32';

export interface KvCacheOptions {
  numBlocks: number;
  /** Tokens per block (default 16). */
  blockSize?: number;
  /** Storage type of keys and values (default f16). */
  dtype?: KvDType;
}

export class KvCache {
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly dtype: KvDType;
  /** Per layer: [numBlocks, blockSize, numKvHeads, headDim] */
  readonly keys: Tensor[] = [];
  readonly values: Tensor[] = [];

  constructor(
    readonly device: Device,
    config: ModelConfig,
    opts: KvCacheOptions,
  ) {
    this.numBlocks = opts.numBlocks;
    this.blockSize = opts.blockSize ?? 16;
    this.dtype = opts.dtype ?? 'f16';
    const shape = [this.numBlocks, this.blockSize, config.numKvHeads, config.headDim];
    for (let l = 0; l < config.numLayers; l++) {
      this.keys.push(empty(device, shape, this.dtype, `k_cache.${l}`));
      this.values.push(empty(device, shape, this.dtype, `v_cache.${l}`));
    }
  }

  /** Device bytes of one block across all layers, K and V. */
  static bytesPerBlock(config: ModelConfig, blockSize: number, dtype: KvDType): number {
    return 2 * config.numLayers * blockSize * config.numKvHeads * config.headDim * DTYPE_BYTES[dtype];
  }

  free(): void {
    for (const t of [...this.keys, ...this.values]) this.device.free(t.buffer);
    this.keys.length = 0;
    this.values.length = 0;
  }
}

// The paged KV cache on the device: per layer, a K pool and a V pool of fixed-size blocks.
// Which block belongs to which sequence is the block manager's business (src/engine); here
// are only the pools and their sizes.
//
// A pool larger than one kernel binding is split into parts of whole blocks (block b in part
// floor(b / blocksPerPart); src/device/kv-pool.ts), up to the device's maxPoolParts; the cache
// ops take the parts as one pool.

import type { Device, Tensor } from '../device/device.ts';
import { DTYPE_BYTES } from '../device/dtype.ts';
import { partLayout, poolBlock } from '../device/kv-pool.ts';
import { empty } from '../device/tensor.ts';
import type { ModelConfig } from './config.ts';

export type KvDType = 'f16' | 'f32';

export interface KvCacheOptions {
  numBlocks: number;
  /** Tokens per block (default 16). */
  blockSize?: number;
  /** Storage type of keys and values (default f16). */
  dtype?: KvDType;
  /**
   * Largest part of a pool, in bytes (never above the device's binding and buffer limits, the
   * default). Lower it to split small pools (tests of the split paths).
   */
  maxPartBytes?: number;
}

/** A cache the device cannot hold as asked: more parts per pool than its kernels bind. */
export class KvCacheTooLargeError extends Error {
  override name = 'KvCacheTooLargeError';
}

export class KvCache {
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly dtype: KvDType;
  /** Blocks of every part of a pool but the last (numBlocks where a pool is one part). */
  readonly blocksPerPart: number;
  /** Per layer, the parts of the pool: [blocksPerPart (the last part: the rest), blockSize, numKvHeads, headDim] */
  readonly keys: Tensor[][] = [];
  readonly values: Tensor[][] = [];

  constructor(
    readonly device: Device,
    config: ModelConfig,
    opts: KvCacheOptions,
  ) {
    this.numBlocks = opts.numBlocks;
    this.blockSize = opts.blockSize ?? 16;
    this.dtype = opts.dtype ?? 'f16';
    const row = [this.blockSize, config.numKvHeads, config.headDim];
    const blockBytes = KvCache.bytesPerBlock(config, this.blockSize, this.dtype) / (2 * config.numLayers);
    const maxPartBytes = KvCache.maxPartBytes(device, opts.maxPartBytes);
    const { parts, blocksPerPart } = partLayout(this.numBlocks, blockBytes, maxPartBytes);
    if (parts > device.info.maxPoolParts) {
      throw new KvCacheTooLargeError(
        `a KV cache of ${this.numBlocks} blocks needs ${parts} parts per layer pool, over the ${device.info.maxPoolParts} this device binds in one kernel ` +
          `(at most ${KvCache.maxBlocks(device, config, this.blockSize, this.dtype, maxPartBytes)} blocks of ${this.blockSize} tokens); use fewer blocks, ` +
          `a lower gpuMemoryUtilization, or kvCacheDtype f16`,
      );
    }
    this.blocksPerPart = blocksPerPart;
    for (let l = 0; l < config.numLayers; l++) {
      const k: Tensor[] = [];
      const v: Tensor[] = [];
      for (let p = 0; p < parts; p++) {
        const shape = [Math.min(blocksPerPart, this.numBlocks - p * blocksPerPart), ...row];
        const suffix = parts > 1 ? `.${p}` : '';
        k.push(empty(device, shape, this.dtype, `k_cache.${l}${suffix}`));
        v.push(empty(device, shape, this.dtype, `v_cache.${l}${suffix}`));
      }
      this.keys.push(k);
      this.values.push(v);
    }
  }

  /** Device bytes of one block across all layers, K and V. */
  static bytesPerBlock(config: ModelConfig, blockSize: number, dtype: KvDType): number {
    return 2 * config.numLayers * blockSize * config.numKvHeads * config.headDim * DTYPE_BYTES[dtype];
  }

  /** The largest part of a pool: what this device can bind and allocate, or less if asked. */
  static maxPartBytes(device: Device, asked = Infinity): number {
    return Math.min(asked, device.info.maxBindingBytes, device.info.maxBufferBytes);
  }

  /** The most blocks a cache can have on this device: maxPoolParts parts per pool, each as large as a part may be. */
  static maxBlocks(device: Device, config: ModelConfig, blockSize: number, dtype: KvDType, maxPartBytes?: number): number {
    const blockBytes = KvCache.bytesPerBlock(config, blockSize, dtype) / (2 * config.numLayers);
    return device.info.maxPoolParts * Math.floor(KvCache.maxPartBytes(device, maxPartBytes) / blockBytes);
  }

  /** K and V views of block b of layer l: [1, blockSize, numKvHeads, headDim] each. */
  block(l: number, b: number): [Tensor, Tensor] {
    return [poolBlock(this.keys[l], b), poolBlock(this.values[l], b)];
  }

  free(): void {
    for (const t of [...this.keys, ...this.values].flat()) this.device.free(t.buffer);
    this.keys.length = 0;
    this.values.length = 0;
  }
}

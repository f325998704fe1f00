// The device layer: the one interface that the model and the engine call, and that each
// backend (cpu, webgpu, native) fills in. Modelled on ggml-backend: a device owns buffers,
// runs ops by name with typed params, records many dispatches into a command stream that is
// submitted once per step, and says up front which ops and shapes it supports.

import type { DType } from './dtype.ts';
import type { OpArgs, OpName } from './ops.ts';

export type BackendName = 'cpu' | 'webgpu' | 'native';

/** A raw allocation on a device. Tensors are typed views into one. */
export interface DeviceBuffer {
  readonly id: number;
  readonly size: number; // bytes
  readonly label: string;
  readonly device: Device;
}

/**
 * A packed layout of a matmul weight that a backend made for its own kernels
 * (`Device.packWeight`). 'tiled' (webgpu): f16 [n, k] stored as tiles of WEIGHT_TILE_ROWS rows,
 * each tile as k / WEIGHT_TILE_K slices of [WEIGHT_TILE_ROWS][WEIGHT_TILE_K] halves, rows past n
 * zero (the buffer holds n rounded up to whole tiles).
 */
export type WeightLayout = 'tiled';
export const WEIGHT_TILE_ROWS = 128;
export const WEIGHT_TILE_K = 32;

/** A contiguous, row-major view into a buffer (or a packed weight, see `layout`). `offset` is in bytes. */
export interface Tensor {
  readonly buffer: DeviceBuffer;
  readonly offset: number;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /**
   * Set only on a weight that `Device.packWeight` packed: only matmul's `w` on that device reads it,
   * and its bytes (download) are in that layout.
   */
  readonly layout?: WeightLayout;
}

export interface DeviceFeatures {
  /** WGSL `enable f16` (or native half arithmetic). */
  f16: boolean;
  /** subgroup (warp) operations. */
  subgroups: boolean;
  /** matrix units reachable from kernels (subgroup matrices / tensor cores). */
  subgroupMatrix: boolean;
  /** GPU-side timestamps for stream timing. */
  timestamps: boolean;
  /**
   * The matmuls run faster on activations already in the weights' 16-bit type, which rms_norm and
   * silu_and_mul can then write (the native backend with a BLAS library: no cast kernel before
   * each product). A preference, not a capability: the cpu backend takes 16-bit activations too.
   */
  activations16?: boolean;
}

export interface DeviceInfo {
  backend: BackendName;
  /** Human name of the adapter, e.g. "NVIDIA H100 80GB HBM3" or "llvmpipe". */
  name: string;
  /** Driver/backend description (Vulkan, OpenGL ES, ...). */
  description: string;
  features: DeviceFeatures;
  /** Largest single tensor binding a kernel can take, in bytes. */
  maxBindingBytes: number;
  /** Most parts (bindings) a KV pool of the cache ops may span (src/device/kv-pool.ts). */
  maxPoolParts: number;
  /** Largest single allocation, in bytes. */
  maxBufferBytes: number;
  /** Required alignment of a tensor's byte offset when it is bound to a kernel. */
  bindingAlignment: number;
}

export interface MemoryInfo {
  /** Bytes currently allocated through this device. */
  allocated: number;
  /** Total device memory if the backend can tell, else undefined. */
  total?: number;
}

/** What `supports` answers: true, or the reason it cannot. */
export type Support = { ok: true } | { ok: false; reason: string };

export interface Completion {
  /** Resolves when every command of the stream has finished on the device. */
  done(): Promise<void>;
  /** GPU time of the stream in ms where the stream was created with timing, else wall time. */
  elapsedMs(): Promise<number>;
  /**
   * The device's timestamps (ns, the device's own clock) at the start and the end of the stream,
   * where the stream was created with timing and the backend has absolute timestamps (webgpu):
   * consecutive streams' spans give the device's idle time between them.
   */
  gpuSpanNs?(): Promise<[bigint, bigint] | undefined>;
}

export interface StreamOptions {
  /** Measure the stream's time on the device (timestamp queries where present). */
  timing?: boolean;
  label?: string;
}

/**
 * A command stream: ops and copies are recorded in order and run when `submit` is called.
 * The model records a whole step into one stream and submits once.
 */
export interface CommandStream {
  op<K extends OpName>(name: K, args: OpArgs[K]): this;
  /** dst <- src, same byte size. */
  copy(src: Tensor, dst: Tensor): this;
  /** Host data into a tensor, ordered with the recorded ops. */
  write(dst: Tensor, data: ArrayBufferView): this;
  /** Read a tensor as it is at this point of the stream; the promise resolves after submit. */
  read(src: Tensor): Promise<Uint8Array>;
  submit(): Completion;
}

export interface Device {
  readonly info: DeviceInfo;

  alloc(bytes: number, label?: string): DeviceBuffer;
  free(buffer: DeviceBuffer): void;
  memory(): MemoryInfo;

  /** Writes host data into a tensor (queued before any later submit). */
  upload(dst: Tensor, data: ArrayBufferView): void;
  /** Reads a tensor back (waits for all submitted work). */
  download(src: Tensor): Promise<Uint8Array>;

  supports<K extends OpName>(name: K, args: OpArgs[K]): Support;
  /**
   * A matmul weight [n, k] in the layout this device's matmuls read fastest: a new tensor (w's
   * buffer then freed, w must not be used again) or w itself. Only matmul's `w` may be a packed
   * tensor, on the device that packed it. Optional: a device without it reads row-major weights.
   */
  packWeight?(w: Tensor): Tensor;
  stream(options?: StreamOptions): CommandStream;
  /** Waits until all submitted work has finished. */
  sync(): Promise<void>;
  destroy(): void;
}

/** A user asked for something this device cannot do (unsupported op, shape or feature). */
export class UnsupportedError extends Error {
  override name = 'UnsupportedError';
}

/** A backend exists in the design but is not available in this build or on this machine. */
export class BackendUnavailableError extends Error {
  override name = 'BackendUnavailableError';
}

/** A tensor is larger than a kernel binding or buffer can hold on this device. */
export class TensorTooLargeError extends Error {
  override name = 'TensorTooLargeError';
}

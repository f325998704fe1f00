// Device buffers a forward pass reuses from step to step: named activations sized for the
// step's token count (grown when a step needs more, never shrunk), and small per-step inputs
// written from the host inside the step's stream.

import type { CommandStream, Device, DeviceBuffer, Tensor } from '../device/device.ts';
import { type DType, byteSize, encode } from '../device/dtype.ts';
import type { ModelConfig } from './config.ts';

export class Workspace {
  private buffers = new Map<string, DeviceBuffer>();
  private owned: DeviceBuffer[] = [];

  constructor(
    private device: Device,
    readonly config: ModelConfig,
  ) {}

  /** The named activation with this shape, in a buffer reused across steps. */
  get(name: string, shape: number[], dtype: DType): Tensor {
    const bytes = Math.max(16, byteSize(shape, dtype));
    let b = this.buffers.get(name);
    if (!b || b.size < bytes) {
      // work already submitted keeps the old buffer alive until it completes
      if (b) this.device.free(b);
      b = this.device.alloc(Math.ceil(bytes * 1.25 / 256) * 256, name);
      this.buffers.set(name, b);
    }
    return { buffer: b, offset: 0, shape, dtype };
  }

  /** A tensor that lives as long as the workspace (derived weights). */
  persistent(shape: number[], dtype: DType, label: string): Tensor {
    const b = this.device.alloc(Math.max(16, byteSize(shape, dtype)), label);
    this.owned.push(b);
    return { buffer: b, offset: 0, shape, dtype };
  }

  /** `now` takes the place of the persistent buffer `old`, which is freed. */
  replacePersistent(old: DeviceBuffer, now: DeviceBuffer): void {
    const i = this.owned.indexOf(old);
    if (i < 0) throw new Error(`replacePersistent: ${old.label} is not a persistent buffer of this workspace`);
    this.owned[i] = now;
    this.device.free(old);
  }

  /** Writes host values into the named tensor within the stream and returns the tensor. */
  upload(s: CommandStream, name: string, shape: number[], values: ArrayLike<number>, dtype: DType = 'i32'): Tensor {
    const t = this.get(name, shape, dtype);
    s.write(t, encode(values, dtype));
    return t;
  }

  /** Several [n] inputs at once: {key: [dtype, values]} -> {key: tensor}. */
  hostInputs<K extends string>(s: CommandStream, prefix: string, n: number, inputs: Record<K, [DType, ArrayLike<number>]>): Record<K, Tensor> {
    const out = {} as Record<K, Tensor>;
    for (const [key, [dtype, values]] of Object.entries(inputs) as [K, [DType, ArrayLike<number>]][]) {
      if (values.length !== n) throw new Error(`${prefix}.${key}: ${values.length} values for ${n} entries`);
      out[key] = this.upload(s, `${prefix}.${key}`, [n], values, dtype);
    }
    return out;
  }

  free(): void {
    for (const b of [...this.buffers.values(), ...this.owned]) this.device.free(b);
    this.buffers.clear();
    this.owned = [];
  }
}

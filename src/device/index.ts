// Backend selection by name. Backends load lazily: asking for `cpu` never loads Dawn, and
// nothing but `native` will ever load CUDA/HIP libraries.

import { type BackendName, BackendUnavailableError, type Device } from './device.ts';
import type { AdapterChoice } from './webgpu/adapter.ts';

export * from './device.ts';
export * from './dtype.ts';
export * from './kv-pool.ts';
export * from './ops.ts';
export * from './tensor.ts';

export const BACKENDS: BackendName[] = ['webgpu', 'native', 'cpu'];

export interface DeviceOptions {
  /** webgpu: which Dawn backend to use ('auto' tries Vulkan, then OpenGL ES/llvmpipe). */
  adapter?: AdapterChoice;
  /** webgpu: lower the per-binding limit (tests of the splitting paths). */
  maxBindingBytes?: number;
}

export async function createDevice(backend: string, options: DeviceOptions = {}): Promise<Device> {
  switch (backend) {
    case 'cpu': {
      const { CpuDevice } = await import('./cpu/backend.ts');
      return new CpuDevice();
    }
    case 'webgpu': {
      const { WebGpuDevice } = await import('./webgpu/backend.ts');
      return WebGpuDevice.open(options);
    }
    case 'native':
      throw new BackendUnavailableError(
        "native: the CUDA/HIP addon is not built in this version of parallm (it lands with the native-backend issue); use --backend=webgpu or --backend=cpu",
      );
    default:
      throw new BackendUnavailableError(`unknown backend '${backend}': choose one of ${BACKENDS.join(', ')}`);
  }
}

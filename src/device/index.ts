// Backend selection by name. Backends load lazily: asking for `cpu` never loads Dawn, and
// nothing but `native` loads the CUDA/HIP addon (src/device/native/addon.ts).

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
  /** webgpu: time every dispatch (src/device/webgpu/profile.ts; default PARALLM_WEBGPU_PROFILE=1). */
  profile?: boolean;
  /** native: the addon to load instead of native/build/parallm_native.node (or PARALLM_NATIVE_ADDON). */
  nativeAddon?: string;
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
    case 'native': {
      // NativeUnavailableError (a BackendUnavailableError) says whether the addon or the GPU is missing
      const { NativeDevice } = await import('./native/backend.ts');
      return NativeDevice.open({ addon: options.nativeAddon });
    }
    default:
      throw new BackendUnavailableError(`unknown backend '${backend}': choose one of ${BACKENDS.join(', ')}`);
  }
}

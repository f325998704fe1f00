// Loading of the native addon (native/build/parallm_native.node), lazily: only
// createDevice('native') imports this file, so the webgpu and cpu backends never load CUDA or
// HIP libraries. Says which of the two things a native device needs is missing: the built
// addon, or a GPU (with its driver) that the addon's runtime can see.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackendUnavailableError } from '../device.ts';

/** What the addon exports (native/src/addon.cpp). Device pointers are plain numbers. */
export interface NativeAddon {
  vendor: 'CUDA' | 'HIP';
  probe(): { vendor: string; count: number; error?: string; code?: number };
  open(device: number): OpenInfo;
  memInfo(): { freeBytes: number; totalBytes: number };
  malloc(bytes: number): number;
  free(ptr: number): void;
  memset(ptr: number, byte: number, bytes: number): void;
  upload(ptr: number, data: ArrayBufferView): void;
  copy(dst: number, src: number, bytes: number): void;
  layouts(): { name: string; fields: string }[];
  launch(op: number, args: Float64Array): void;
  /** GPU ms and launch count per op since the last call, with PARALLM_NATIVE_PROFILE=1 (else empty). */
  profile(): Record<string, [number, number]>;
  begin(timing: boolean): void;
  write(ptr: number, data: ArrayBufferView): void;
  read(ptr: number, bytes: number): number;
  end(): Promise<{ reads: Uint8Array[]; ms: number | null }>;
  abort(): void;
  captureBegin(): void;
  captureEnd(): number;
  graphLaunch(id: number): void;
  graphDestroy(id: number): void;
}

export interface OpenInfo {
  vendor: string;
  name: string;
  major: number;
  minor: number;
  multiProcessors: number;
  warpSize: number;
  totalBytes: number;
  freeBytes: number;
  driverVersion: number;
  runtimeVersion: number;
  blasLoaded: boolean;
  blasPath: string;
  blasError: string;
}

/** The native backend cannot run here; `missing` says whether the addon or the GPU is absent. */
export class NativeUnavailableError extends BackendUnavailableError {
  override name = 'NativeUnavailableError';
  constructor(
    readonly missing: 'addon' | 'gpu',
    message: string,
  ) {
    super(message);
  }
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** Where `npm install` / scripts/build-native.sh put the addon. */
export const DEFAULT_ADDON_PATH = join(ROOT, 'native', 'build', 'parallm_native.node');

/** The addon's path: an explicit one, else PARALLM_NATIVE_ADDON, else native/build. */
export function addonPath(explicit?: string): string {
  return explicit ?? process.env.PARALLM_NATIVE_ADDON ?? DEFAULT_ADDON_PATH;
}

const loaded = new Map<string, NativeAddon>();

/** Loads the addon (once per path) or throws NativeUnavailableError('addon'). */
export function loadAddon(path = addonPath()): NativeAddon {
  const hit = loaded.get(path);
  if (hit) return hit;
  if (!existsSync(path)) {
    throw new NativeUnavailableError(
      'addon',
      `native: the CUDA/HIP addon is not built (no ${path}). Build it with \`npm run build:native\` on a machine with nvcc or hipcc ` +
        '(npm install does so when one is on the PATH), or use --backend=webgpu or --backend=cpu',
    );
  }
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (e) {
    throw new NativeUnavailableError('addon', `native: the addon at ${path} does not load (${(e as Error).message}); rebuild it with \`npm run build:native\``);
  }
  loaded.set(path, addon);
  return addon;
}

/** Throws NativeUnavailableError('gpu') when the addon's runtime sees no GPU. */
export function requireGpu(addon: NativeAddon): void {
  const p = addon.probe();
  if (p.count > 0) return;
  const driver = addon.vendor === 'CUDA' ? 'an NVIDIA GPU with its driver (libcuda.so.1)' : 'an AMD GPU with ROCm (/dev/kfd)';
  throw new NativeUnavailableError(
    'gpu',
    `native: the ${addon.vendor} addon is built, but no GPU is visible: ${p.error ?? 'the runtime reports 0 devices'}. ` +
      `It needs ${driver}; use --backend=webgpu or --backend=cpu on this machine`,
  );
}

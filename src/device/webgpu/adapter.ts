// Finding a WebGPU adapter through Dawn (the `webgpu` npm package): Vulkan on a GPU server
// (with the toggles that expose f16 and subgroup matrices on NVIDIA), else OpenGL ES in
// compatibility mode, which is what Mesa's llvmpipe offers on a machine without a GPU.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { BackendUnavailableError } from '../device.ts';

export type AdapterChoice = 'auto' | 'vulkan' | 'opengles';

export interface GpuContext {
  gpu: GPU;
  adapter: GPUAdapter;
  device: GPUDevice;
  backend: 'vulkan' | 'opengles';
  features: Set<string>;
  subgroupMatrix: boolean;
  /** Uncaptured device errors (invalid shaders, pipelines, bindings) not yet reported. */
  errors: string[];
}

// Device toggles on the GPU. Robustness (bounds clamping of every storage access, which Tint
// adds to each load and store) is off by default, as Chrome's own Graphite does: the kernels'
// indices are proven in range by the parity suite. Validation stays on: with skip_validation an
// invalid shader or binding aborts the process instead of raising an error.
// PARALLM_DAWN_ENABLE / PARALLM_DAWN_DISABLE (comma lists) add toggles, e.g.
// PARALLM_DAWN_DISABLE=disable_robustness turns the clamps back on.
function gpuFlags(): string[] {
  const list = (v: string | undefined) => (v ?? '').split(',').map((t) => t.trim()).filter(Boolean);
  const disable = new Set(['timestamp_quantization', ...list(process.env.PARALLM_DAWN_DISABLE)]);
  const enable = ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia', 'disable_robustness', ...list(process.env.PARALLM_DAWN_ENABLE)].filter((t) => !disable.has(t));
  return [`enable-dawn-features=${[...new Set(enable)].join(',')}`, `disable-dawn-features=${[...disable].join(',')}`];
}
const WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query', 'chromium-experimental-subgroup-matrix'];
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupStorageSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupsPerDimension',
] as const;

let dawn: { create: (flags: string[]) => GPU; globals: Record<string, unknown> } | undefined;

async function loadDawn() {
  if (!dawn) {
    // Mesa's EGL needs a platform without a display server; harmless where a GPU driver is used.
    process.env.EGL_PLATFORM ??= 'surfaceless';
    const mod = (await import('webgpu')) as any;
    dawn = { create: mod.create, globals: mod.globals };
    // GPUBufferUsage, GPUShaderStage, GPUMapMode ... as in a browser
    for (const [k, v] of Object.entries(dawn.globals)) if (!(k in globalThis)) (globalThis as any)[k] = v;
  }
  return dawn;
}

async function tryAdapter(kind: 'vulkan' | 'opengles'): Promise<{ gpu: GPU; adapter: GPUAdapter } | undefined> {
  const { create } = await loadDawn();
  if (kind === 'vulkan') {
    const gpu = create(['backend=vulkan', ...gpuFlags()]);
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    return adapter ? { gpu, adapter } : undefined;
  }
  const gpu = create(['backend=opengles']);
  const adapter = await gpu.requestAdapter({ featureLevel: 'compatibility' } as GPURequestAdapterOptions);
  return adapter ? { gpu, adapter } : undefined;
}

/** Whether a Vulkan loader is installed: without one Dawn only prints a warning and finds nothing. */
function hasVulkanLoader(): boolean {
  const dirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib', ...(process.env.LD_LIBRARY_PATH ?? '').split(':')];
  if (dirs.some((d) => d && existsSync(`${d}/libvulkan.so.1`))) return true;
  try {
    return execFileSync('ldconfig', ['-p'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().includes('libvulkan.so.1');
  } catch {
    return false;
  }
}

export async function openGpu(choice: AdapterChoice = 'auto'): Promise<GpuContext> {
  const order: ('vulkan' | 'opengles')[] = choice === 'auto' ? (hasVulkanLoader() ? ['vulkan', 'opengles'] : ['opengles']) : [choice];
  let found: { gpu: GPU; adapter: GPUAdapter; backend: 'vulkan' | 'opengles' } | undefined;
  for (const kind of order) {
    const r = await tryAdapter(kind);
    if (r) {
      found = { ...r, backend: kind };
      break;
    }
  }
  if (!found) {
    throw new BackendUnavailableError(
      `webgpu: no adapter found (tried ${order.join(', ')}). On a GPU server install the Vulkan loader (libvulkan1) ` +
        `and the GPU's Vulkan driver; without a GPU install Mesa (libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri) for llvmpipe.`,
    );
  }
  const { gpu, adapter, backend } = found;
  const features = [...adapter.features].filter((f) => WANTED_FEATURES.includes(f)) as GPUFeatureName[];
  const requiredLimits: Record<string, number> = {};
  for (const l of WANTED_LIMITS) requiredLimits[l] = (adapter.limits as any)[l];
  const device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
  const errors: string[] = [];
  device.addEventListener?.('uncapturederror', (e: any) => errors.push(String(e.error?.message ?? e)));
  const set = new Set<string>(features);
  const configs = ((adapter.info as any).subgroupMatrixConfigs ?? []) as { componentType: string; resultComponentType: string; M: number; N: number; K: number }[];
  const sgm = configs.some((c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && c.M === 16 && c.N === 16 && c.K === 16);
  // matmul_sgmat lays four 32-wide subgroups over its tile
  const info = adapter.info as GPUAdapterInfo;
  const warp32 = info.subgroupMinSize === 32 && info.subgroupMaxSize === 32;
  const usable = sgm && warp32 && ['chromium-experimental-subgroup-matrix', 'shader-f16', 'subgroups'].every((f) => set.has(f));
  return { gpu, adapter, device, backend, features: set, subgroupMatrix: usable, errors };
}

// The parity harness: every op on every backend present against the CPU reference, on fresh
// random inputs (the seed is printed and can be pinned with PARALLM_SEED), outputs poisoned
// beforehand so that an element a kernel forgot to write fails the comparison.

import { randomInt } from 'node:crypto';
import { mulberry32 } from '../../src/util/prng.ts';
import { CpuDevice } from '../../src/device/cpu/backend.ts';
import { type Device, type KvPool, type OpArgs, type OpName, type Tensor, createDevice, decode, fromArray, numel, type DType } from '../../src/device/index.ts';

/**
 * Backends under test: PARALLM_TEST_BACKENDS (comma list), else webgpu, plus native on the GPU
 * machine (PARALLM_TEST_GPU=1), where a missing addon or GPU then fails the suite instead of
 * skipping it. The cpu backend is the oracle.
 */
export function backendsUnderTest(): string[] {
  const listed = process.env.PARALLM_TEST_BACKENDS;
  if (listed) return listed.split(',').filter(Boolean);
  return nativeSkipReason() ? ['webgpu'] : ['webgpu', 'native'];
}

/** Why the parity suite does not run on the native backend here, or undefined when it does. */
export function nativeSkipReason(): string | undefined {
  const listed = process.env.PARALLM_TEST_BACKENDS;
  if (listed) return listed.split(',').includes('native') ? undefined : `PARALLM_TEST_BACKENDS=${listed} leaves it out`;
  if (process.env.PARALLM_TEST_GPU !== '1') return 'it needs a GPU: run npm run test:gpu (PARALLM_TEST_GPU=1) on the GPU machine';
  return undefined;
}

export const SEED = Number(process.env.PARALLM_SEED ?? randomInt(2 ** 31));
console.log(`parity harness seed: PARALLM_SEED=${SEED}`);

/** Seeded test data: mulberry32. */
export const rng = mulberry32;

/** n values uniform in [lo, hi). */
export function uniform(r: () => number, n: number, lo = -1, hi = 1): Float64Array {
  return Float64Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** n standard normal values. */
export function normal(r: () => number, n: number, scale = 1): Float64Array {
  return Float64Array.from({ length: n }, () => scale * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()));
}

/** ‖out − ref‖ / ‖ref‖; Infinity if out holds a NaN (a poisoned, unwritten element). */
export function relErr(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (out.length !== ref.length) throw new Error(`length ${out.length} vs ${ref.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i])) return Infinity;
    num += (out[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

const POISON: Record<DType, number[]> = { f32: [NaN], f16: [NaN], bf16: [NaN], i32: [-0x7fffffff], u32: [0xffffffff] };

/** A host-side tensor spec: values with a shape and the dtype they are stored as. */
export interface HostTensor {
  values: ArrayLike<number>;
  shape: number[];
  dtype: DType;
}

export const host = (values: ArrayLike<number>, shape: number[], dtype: DType = 'f32'): HostTensor => ({ values, shape, dtype });
/** An output: poisoned before the op runs. */
export const output = (shape: number[], dtype: DType = 'f32'): HostTensor => ({ values: new Array(numel(shape)).fill(POISON[dtype][0]), shape, dtype });

/** Host specs for an op's tensor arguments; a KV pool may be given as its parts (src/device/kv-pool.ts). */
export type HostArgs<K extends OpName> = {
  [P in keyof OpArgs[K]]: OpArgs[K][P] extends Tensor | undefined ? HostTensor | undefined : OpArgs[K][P] extends KvPool ? HostTensor | HostTensor[] : OpArgs[K][P];
};

// (not `'values' in v` alone: an array has a values method)
const isHost = (v: unknown): v is HostTensor => !!v && typeof v === 'object' && !Array.isArray(v) && 'values' in v && 'shape' in v;

/**
 * Runs op `name` on `device` with tensors made from host specs; returns every tensor argument's
 * contents afterwards (inputs modified in place included), decoded; a pool given in parts comes
 * back as its parts' contents one after the other, i.e. as the whole pool in block order.
 */
export async function runOp<K extends OpName>(device: Device, name: K, hostArgs: HostArgs<K>): Promise<Record<string, ArrayLike<number>>> {
  const args: Record<string, unknown> = {};
  const tensors: Record<string, Tensor[]> = {};
  for (const [k, v] of Object.entries(hostArgs as Record<string, unknown>)) {
    if (isHost(v)) {
      const t = fromArray(device, v.values, v.shape, v.dtype, k);
      tensors[k] = [t];
      args[k] = t;
    } else if (Array.isArray(v) && v.length && v.every(isHost)) {
      tensors[k] = v.map((h, i) => fromArray(device, h.values, h.shape, h.dtype, `${k}.${i}`));
      args[k] = tensors[k];
    } else args[k] = v;
  }
  const s = device.stream();
  s.op(name, args as OpArgs[K]);
  const reads = Object.entries(tensors).map(async ([k, ts]) => {
    const parts = await Promise.all(ts.map((t) => s.read(t).then((b) => decode(b, t.dtype))));
    return [k, parts.length === 1 ? parts[0] : parts.flatMap((p) => Array.from(p))] as const;
  });
  await s.submit().done();
  const out = Object.fromEntries(await Promise.all(reads));
  for (const t of Object.values(tensors).flat()) device.free(t.buffer);
  return out;
}

let oracle: CpuDevice | undefined;
/** The same op on the CPU reference. */
export function reference<K extends OpName>(name: K, hostArgs: HostArgs<K>): Promise<Record<string, ArrayLike<number>>> {
  oracle ??= new CpuDevice();
  return runOp(oracle, name, hostArgs);
}

export async function openBackend(name: string): Promise<Device> {
  return createDevice(name);
}

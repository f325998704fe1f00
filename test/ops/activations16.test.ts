// 16-bit activations: rms_norm and silu_and_mul writing the weights' f16/bf16 type, and matmul
// taking it as its a, which spares the native backend's cast kernel before each cuBLAS call
// (src/device/ops.ts). Every backend under test either runs them at parity with the CPU
// reference (which rounds its f64 result to the 16-bit type) or says why not: WebGPU's kernels
// take f32 activations, and native sends 16-bit activations to the vendor BLAS only.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Device, type OpArgs, type OpName, fromArray } from '../../src/device/index.ts';
import { SEED, backendsUnderTest, type HostArgs, type HostTensor, host, normal, openBackend, output, reference, relErr, rng, runOp, uniform } from './harness.ts';

// One rounding to f16 (bf16) is 2^-11 (2^-8) relative; the reference rounds from f64 and the
// kernels from f32, so an element near a rounding boundary may land one unit apart.
const TOL16 = { f16: 2e-3, bf16: 1e-2 } as const;
const F32_TOL = 1e-5;

/** What `device.supports` says of these host arguments (tensors made and freed for the question). */
function supportsHost<K extends OpName>(dev: Device, name: K, hostArgs: HostArgs<K>) {
  const made: ReturnType<typeof fromArray>[] = [];
  const args: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(hostArgs as Record<string, unknown>)) {
    if (v && typeof v === 'object' && 'values' in v && 'shape' in v) {
      const h = v as HostTensor;
      const t = fromArray(dev, h.values, h.shape, h.dtype, k);
      made.push(t);
      args[k] = t;
    } else args[k] = v;
  }
  try {
    return dev.supports(name, args as OpArgs[K]);
  } finally {
    for (const t of made) dev.free(t.buffer);
  }
}

describe.each(backendsUnderTest())('%s backend: 16-bit activations', (backend) => {
  let dev: Device;
  beforeAll(async () => {
    dev = await openBackend(backend);
  });
  afterAll(() => dev?.destroy());

  const r = rng(SEED ^ 0x5a16);

  it.each([
    [4, 4096, 'f16', true],
    [65, 2048, 'bf16', true],
    // 130 % 4: the scalar kernel
    [3, 130, 'f16', true],
    [2, 8192 + 4, 'bf16', false],
  ] as const)('rms_norm: %i rows of %i, out %s, residual %s', async (n, h, dt, withResidual) => {
    const args = {
      x: host(normal(r, n * h, 3), [n, h]),
      weight: host(uniform(r, h, 0.5, 1.5), [h], dt),
      out: output([n, h], dt),
      residual: withResidual ? host(normal(r, n * h), [n, h]) : undefined,
      eps: 1e-5,
    };
    const s = supportsHost(dev, 'rms_norm', args);
    if (backend === 'webgpu') {
      expect(s.ok).toBe(false);
      expect(s.ok ? '' : s.reason).toMatch(/writes f32 activations/);
      return;
    }
    expect(s).toEqual({ ok: true });
    const got = await runOp(dev, 'rms_norm', args);
    const want = await reference('rms_norm', args);
    expect(relErr(got.out, want.out)).toBeLessThan(TOL16[dt]);
    // and it is the f32 result rounded, not something else within the tolerance
    const f32 = await reference('rms_norm', { ...args, out: output([n, h]) });
    expect(relErr(got.out, f32.out)).toBeLessThan(TOL16[dt]);
    expect(relErr(got.out, f32.out)).toBeGreaterThan(0);
    if (withResidual) expect(relErr(got.residual, want.residual)).toBeLessThan(F32_TOL);
  });

  it.each([
    [1, 11008, 'f16'],
    [33, 173, 'bf16'],
  ] as const)('silu_and_mul: %i rows of %i, out %s', async (n, inter, dt) => {
    const args = { x: host(normal(r, n * 2 * inter, 2), [n, 2 * inter]), out: output([n, inter], dt) };
    const s = supportsHost(dev, 'silu_and_mul', args);
    if (backend === 'webgpu') {
      expect(s.ok ? '' : s.reason).toMatch(/writes f32 activations/);
      return;
    }
    expect(s).toEqual({ ok: true });
    const got = await runOp(dev, 'silu_and_mul', args);
    const want = await reference('silu_and_mul', args);
    expect(relErr(got.out, want.out)).toBeLessThan(TOL16[dt]);
  });

  it.each([
    [1, 96, 64, 'f16'],
    [37, 200, 136, 'bf16'],
    [300, 512, 256, 'f16'],
  ] as const)('matmul: a [%i, k] of w\'s type, n %i, k %i, %s', async (m, n, k, dt) => {
    const a = normal(r, m * k);
    const w = normal(r, n * k, 0.1);
    const args = { a: host(a, [m, k], dt), w: host(w, [n, k], dt), out: output([m, n]) };
    const s = supportsHost(dev, 'matmul', args);
    if (backend === 'webgpu') {
      expect(s.ok ? '' : s.reason).toMatch(/take f32 activations/);
      return;
    }
    if (backend === 'native' && !dev.info.features.activations16) {
      // the emulator and machines without a BLAS library: gemv and tiled take f32 only
      expect(s.ok ? '' : s.reason).toMatch(/vendor BLAS only/);
      return;
    }
    expect(s).toEqual({ ok: true });
    const got = await runOp(dev, 'matmul', args);
    const want = await reference('matmul', args);
    // both products see the same 16-bit a: only the accumulation differs (f32 on the GPU)
    expect(relErr(got.out, want.out)).toBeLessThan(2e-3);
  });

  it('rejects a 16-bit a of another type than w, and a 16-bit rms_norm out over its x', () => {
    const [m, k, n] = [4, 32, 8];
    const mixed = supportsHost(dev, 'matmul', { a: host(normal(r, m * k), [m, k], 'bf16'), w: host(normal(r, n * k), [n, k], 'f16'), out: output([m, n]) });
    expect(mixed.ok ? '' : mixed.reason).toMatch(/of w's type/);
    const x = fromArray(dev, normal(r, m * k), [m, k], 'f32');
    const wt = fromArray(dev, uniform(r, k, 0.5, 1.5), [k], 'f16');
    try {
      const alias = dev.supports('rms_norm', { x, weight: wt, out: { ...x, shape: [m, k], dtype: 'f16' }, eps: 1e-5 });
      expect(alias.ok ? '' : alias.reason).toMatch(/must not alias x/);
    } finally {
      dev.free(x.buffer);
      dev.free(wt.buffer);
    }
  });
});

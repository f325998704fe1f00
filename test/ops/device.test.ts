// The device layer itself: backend selection, buffers, streams, supports(), typed errors.

import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendUnavailableError, type Device, UnsupportedError, createDevice, empty, fromArray, toArray, view } from '../../src/device/index.ts';
import { DEFAULT_ADDON_PATH } from '../../src/device/native/addon.ts';
import { backendsUnderTest, nativeSkipReason } from './harness.ts';

describe('backend selection', () => {
  it('native without its addon says that the addon is not built', async () => {
    const open = createDevice('native', { nativeAddon: '/nonexistent/parallm_native.node' });
    await expect(open).rejects.toThrow(BackendUnavailableError);
    await expect(open).rejects.toMatchObject({ name: 'NativeUnavailableError', missing: 'addon', message: expect.stringMatching(/addon is not built .*npm run build:native/) });
  });
  // the addon is built here (npm install with nvcc or hipcc on the PATH, or CI) but no GPU is
  const addonBuilt = existsSync(DEFAULT_ADDON_PATH);
  const noGpu = process.env.PARALLM_TEST_GPU !== '1' && !process.env.PARALLM_DEVICE_MACHINE;
  it.runIf(addonBuilt && noGpu)('native with its addon but without a GPU says that the GPU is missing', async () => {
    const open = createDevice('native', { nativeAddon: DEFAULT_ADDON_PATH });
    await expect(open).rejects.toThrow(BackendUnavailableError);
    await expect(open).rejects.toMatchObject({ name: 'NativeUnavailableError', missing: 'gpu', message: expect.stringMatching(/addon is built, but no GPU is visible/) });
  });
  // the report names why the parity suite leaves native out (a skipped entry, never a pass)
  const why = nativeSkipReason();
  if (why) it.skip(`native backend parity suite, skipped because ${why}`, () => {});
  it('an unknown backend lists the known ones', async () => {
    await expect(createDevice('metal')).rejects.toThrow(/webgpu, native, cpu/);
  });
});

describe.each(['cpu', ...backendsUnderTest()])('%s device', (backend) => {
  let dev: Device;
  beforeAll(async () => {
    dev = await createDevice(backend);
  });
  afterAll(() => dev?.destroy());

  it('uploads, downloads and views sub-ranges', async () => {
    const t = fromArray(dev, Array.from({ length: 1024 }, (_, i) => i * 0.5), [1024], 'f32');
    expect(Array.from(await toArray(dev, view(t, 256, [4])))).toEqual([128, 128.5, 129, 129.5]);
    const h = fromArray(dev, [1, -2, 3.5, 65504], [4], 'f16');
    expect(Array.from(await toArray(dev, h))).toEqual([1, -2, 3.5, 65504]);
  });

  it('tracks allocated memory', () => {
    const before = dev.memory().allocated;
    const t = empty(dev, [1 << 20], 'f32');
    expect(dev.memory().allocated - before).toBeGreaterThanOrEqual(4 << 20);
    dev.free(t.buffer);
    expect(dev.memory().allocated).toBe(before);
  });

  it('a stream runs writes, ops, copies and reads in recorded order', async () => {
    const x = empty(dev, [256], 'f32');
    const y = empty(dev, [256], 'f32');
    const s = dev.stream();
    s.write(x, new Float32Array(256).fill(2));
    s.op('softmax', { x: view(x, 0, [1, 256]), out: view(y, 0, [1, 256]) });
    const r1 = s.read(y);
    s.copy(x, y);
    const r2 = s.read(y);
    await s.submit().done();
    expect(new Float32Array((await r1).buffer)[0]).toBeCloseTo(1 / 256, 7);
    expect(new Float32Array((await r2).buffer)[0]).toBe(2);
  });

  it('supports() explains a shape mismatch and op() throws a typed error', () => {
    const a = empty(dev, [4, 8], 'f32');
    const w = empty(dev, [16, 9], 'f16');
    const out = empty(dev, [4, 16], 'f32');
    const s = dev.supports('matmul', { a, w, out });
    expect(s.ok).toBe(false);
    if (!s.ok) expect(s.reason).toMatch(/w dim 1 must be 8/);
    expect(() => dev.stream().op('matmul', { a, w, out })).toThrow(UnsupportedError);
  });

  it('timing gives a positive elapsed time', async () => {
    const x = fromArray(dev, new Float32Array(1 << 16).fill(1), [1 << 16], 'f32');
    const y = empty(dev, [1 << 16], 'f32');
    const ms = await dev.stream({ timing: true }).op('copy', { x, out: y }).submit().elapsedMs();
    expect(ms).toBeGreaterThan(0);
  });
});

describe.runIf(backendsUnderTest().includes('webgpu'))('webgpu bindings', () => {
  it('a tensor alone in its buffer binds the rest of the buffer; two views of one buffer bind their own bytes', async () => {
    const dev = (await createDevice('webgpu')) as unknown as Device & {
      binding(t: ReturnType<typeof view>, what: string, wide?: boolean): GPUBufferBinding;
      hostStats: { bindGroups: number };
    };
    try {
      const align = dev.info.bindingAlignment;
      const buf = empty(dev, [16 * align], 'f32'); // 64 * align bytes
      const t = view(buf, align, [8]); // 32 bytes at byte 4 * align
      expect(dev.binding(t, 't')).toMatchObject({ offset: 4 * align, size: 32 });
      expect(dev.binding(t, 't', true)).toMatchObject({ offset: 4 * align, size: 60 * align });
      // a copy between two views of one buffer (x before out): both bound exactly, and it runs
      const a = view(buf, 0, [64]);
      const b = view(buf, 2 * align, [64]);
      const data = Float32Array.from({ length: 64 }, (_, i) => i + 0.5);
      dev.upload(a, data);
      await dev.stream().op('copy', { x: a, out: b }).submit().done();
      expect(Array.from((await toArray(dev, b)) as Float32Array)).toEqual(Array.from(data));
      // the same op on the same buffers with a different row count reuses its bind groups
      // when each tensor is alone in its buffer
      const x = empty(dev, [4096], 'f32');
      const y = empty(dev, [4096], 'f32');
      await dev.stream().op('copy', { x: view(x, 0, [1024]), out: view(y, 0, [1024]) }).submit().done();
      const made = dev.hostStats.bindGroups;
      await dev.stream().op('copy', { x: view(x, 0, [2048]), out: view(y, 0, [2048]) }).submit().done();
      expect(dev.hostStats.bindGroups).toBe(made);
    } finally {
      dev.destroy();
    }
  });
});

// On the GPU machine (npm run test:gpu) the suite must run on the GPU with its fast paths,
// not fall back to llvmpipe and pass vacuously.
describe.runIf(process.env.PARALLM_TEST_GPU === '1')('GPU machine', () => {
  it('webgpu runs on a Vulkan GPU adapter with f16, subgroups, subgroup matrices and timestamps', async () => {
    const dev = await createDevice('webgpu');
    console.log('GPU adapter:', JSON.stringify(dev.info));
    expect(dev.info.description).toMatch(/vulkan/);
    expect(dev.info.features).toEqual({ f16: true, subgroups: true, subgroupMatrix: true, timestamps: true });
    dev.destroy();
  });
  it.runIf(backendsUnderTest().includes('native'))('native runs on the GPU with its vendor BLAS loaded (else the tensor-core matmul tests would pass by refusing)', async () => {
    const dev = await createDevice('native');
    console.log('native device:', JSON.stringify(dev.info));
    expect(dev.info.backend).toBe('native');
    expect(dev.info.features.subgroupMatrix, dev.info.description).toBe(true);
    dev.destroy();
  });
});

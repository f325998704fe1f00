// The webgpu backend: Dawn buffers, a command stream that records every dispatch of a step into
// as few compute passes as the data flow allows and submits once, and the op planner of
// ./ops.ts that turns an op into dispatches of the kernels in shaders/.

import type { Completion, CommandStream, Device, DeviceBuffer, DeviceInfo, MemoryInfo, StreamOptions, Support, Tensor } from '../device.ts';
import { TensorTooLargeError, UnsupportedError, WEIGHT_TILE_K, WEIGHT_TILE_ROWS } from '../device.ts';
import { type DType, byteSize } from '../dtype.ts';
import { type OpArgs, type OpName, checkOp } from '../ops.ts';
import { pad4, rows, storedBytes, tensorBytes } from '../tensor.ts';
import { type AdapterChoice, type GpuContext, openGpu } from './adapter.ts';
import { type Kernel, KernelCache, RW_ALL } from './kernels.ts';
import { maxPoolParts } from './attention.ts';
import { type Dispatch, planOp, supportsOp } from './ops.ts';
import { grid, rowBlock } from './plan.ts';
import { DispatchProfile, PROFILE_MAX_DISPATCHES, profileKey } from './profile.ts';

interface GpuBuffer extends DeviceBuffer {
  gpu: GPUBuffer;
}

export interface WebGpuOptions {
  adapter?: AdapterChoice;
  /** Lower the per-binding limit below the adapter's (tests of the splitting paths). */
  maxBindingBytes?: number;
  /** Time every dispatch (profile.ts); default PARALLM_WEBGPU_PROFILE=1. */
  profile?: boolean;
}

let nextId = 1;
const UNIFORM_ALIGN = 256;

export class WebGpuDevice implements Device {
  readonly info: DeviceInfo;
  readonly kernels: KernelCache;
  private allocated = 0;
  private uniforms?: GPUBuffer;
  private staging?: GPUBuffer;
  private scratches = new Map<string, DeviceBuffer>();
  private live = new Set<GpuBuffer>();
  /** see bindGroup() */
  readonly bindGroups = new Map<string, GPUBindGroup>();
  /** host time of the streams: recording them into a command buffer, and queue.submit */
  readonly hostStats = { submits: 0, encodeMs: 0, submitMs: 0, bindGroups: 0 };
  /** per-dispatch GPU times where PARALLM_WEBGPU_PROFILE=1 (profile.ts) */
  readonly profile?: DispatchProfile;
  /** bumped when the params buffer is replaced, which invalidates cached bind groups */
  uniformGeneration = 0;

  static async open(options: WebGpuOptions = {}): Promise<WebGpuDevice> {
    return new WebGpuDevice(await openGpu(options.adapter), options);
  }

  private constructor(readonly ctx: GpuContext, options: WebGpuOptions) {
    const { adapter, device, features } = ctx;
    const info = adapter.info as GPUAdapterInfo;
    const limits = device.limits;
    const name = [info.vendor, info.device || info.description || info.architecture].filter(Boolean).join(' ') || 'unknown adapter';
    this.info = {
      backend: 'webgpu',
      name,
      description: `Dawn ${ctx.backend}${info.description ? ` (${info.description})` : ''}`,
      features: {
        f16: features.has('shader-f16'),
        subgroups: features.has('subgroups'),
        subgroupMatrix: ctx.subgroupMatrix,
        timestamps: features.has('timestamp-query'),
      },
      maxBindingBytes: Math.min(options.maxBindingBytes ?? Infinity, limits.maxStorageBufferBindingSize),
      maxPoolParts: maxPoolParts(limits.maxStorageBuffersPerShaderStage),
      maxBufferBytes: limits.maxBufferSize,
      bindingAlignment: limits.minStorageBufferOffsetAlignment,
    };
    this.kernels = new KernelCache(device);
    if (options.profile ?? process.env.PARALLM_WEBGPU_PROFILE === '1') this.profile = new DispatchProfile();
  }

  get gpu(): GPUDevice {
    return this.ctx.device;
  }

  alloc(bytes: number, label = 'buffer'): DeviceBuffer {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    if (size > this.info.maxBufferBytes) {
      throw new TensorTooLargeError(`webgpu: cannot allocate ${label} of ${bytes} bytes: the adapter's largest buffer is ${this.info.maxBufferBytes} bytes`);
    }
    const gpu = this.gpu.createBuffer({ size, label, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    this.allocated += size;
    const b: GpuBuffer = { id: nextId++, size, label, device: this, gpu };
    this.live.add(b);
    return b;
  }

  free(buffer: DeviceBuffer): void {
    const b = buffer as GpuBuffer;
    if (!this.live.delete(b)) return; // freeing twice is harmless
    // Dawn keeps the memory until submitted work that uses it has completed
    b.gpu.destroy();
    this.allocated -= b.size;
  }

  memory(): MemoryInfo {
    return { allocated: this.allocated };
  }

  upload(dst: Tensor, data: ArrayBufferView): void {
    const bytes = pad4(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    if (dst.offset % 4) throw new RangeError(`webgpu: upload offset ${dst.offset} is not a multiple of 4`);
    this.gpu.queue.writeBuffer((dst.buffer as GpuBuffer).gpu, dst.offset, bytes as Uint8Array<ArrayBuffer>);
  }

  async download(src: Tensor): Promise<Uint8Array> {
    const s = this.stream();
    const p = s.read(src);
    s.submit();
    return p;
  }

  supports<K extends OpName>(name: K, args: OpArgs[K]): Support {
    const c = checkOp(name, args);
    return c.ok ? supportsOp(this, name, args) : c;
  }

  /**
   * Matmul weights tiled (`tileWeight`) where the adapter has subgroup matrices, the kernels that
   * read the layout fastest: matmul_sgmat's staging loads then cover 512 contiguous bytes a
   * subgroup (+13-17% on the H200 lab for w alone, docs/perf-notes.md). Only there: past 64 rows
   * no other kernel reads the layout. PARALLM_TILED_WEIGHTS=0 keeps them row-major (A/B runs).
   */
  packWeight(w: Tensor): Tensor {
    const want = process.env.PARALLM_TILED_WEIGHTS !== '0' && this.info.features.subgroupMatrix;
    return want && canTile(w) ? this.tileWeight(w) : w;
  }

  /** w [n, k] f16 (k % 32 == 0) as a new tensor in the tiled layout (Tensor.layout); w is left as it was. */
  tileWeight(w: Tensor): Tensor {
    if (!canTile(w)) throw new UnsupportedError(`webgpu: cannot tile [${w.shape}] ${w.dtype}${w.layout ? ` (already ${w.layout})` : ''}: a tiled weight is a 2-D f16 row-major tensor with k % ${WEIGHT_TILE_K} == 0`);
    const [n, k] = w.shape;
    const nPad = Math.ceil(n / WEIGHT_TILE_ROWS) * WEIGHT_TILE_ROWS;
    const out: Tensor = { buffer: this.alloc(nPad * k * 2, `${w.buffer.label} (tiled)`), offset: 0, shape: [n, k], dtype: 'f16', layout: 'tiled' };
    const block = rowBlock(this, out);
    const s = this.stream();
    for (let n0 = 0; n0 < n; n0 += block) {
      const nb = Math.min(block, n - n0);
      const total = (Math.ceil(nb / WEIGHT_TILE_ROWS) * WEIGHT_TILE_ROWS * k) / 8;
      s.dispatch({ file: 'tile_weight.wgsl', flags: [], overrides: {}, tensors: { w: rows(w, n0, nb), out: rows(out, n0, nb) }, params: { n: nb, chunks: k / 8, total }, grid: grid(Math.ceil(total / 256)) });
    }
    s.submit();
    return out;
  }

  stream(options: StreamOptions = {}): WebGpuStream {
    return new WebGpuStream(this, options);
  }

  async sync(): Promise<void> {
    await this.gpu.queue.onSubmittedWorkDone();
    this.throwErrors();
  }

  /** A bug surfaced by Dawn's validation (a kernel that does not compile, a bad binding) fails loudly. */
  throwErrors(): void {
    const errs = this.ctx.errors.splice(0);
    if (errs.length) throw new Error(`webgpu: ${errs.length} device error(s):\n${errs.join('\n')}`);
  }

  destroy(): void {
    this.gpu.destroy();
  }

  /**
   * A device-owned scratch tensor for a kernel's intermediate (e.g. the f16 copy of a matmul
   * input), grown on demand. Streams that use it in sequence are ordered by Dawn's barriers.
   */
  scratch(name: string, shape: number[], dtype: DType): Tensor {
    const bytes = byteSize(shape, dtype);
    let b = this.scratches.get(name);
    if (!b || b.size < bytes) {
      // a replaced buffer may still be referenced by recorded, unsubmitted work: let GC free it
      b = this.alloc(Math.max(bytes, (b?.size ?? 0) * 2), `scratch ${name}`);
      this.scratches.set(name, b);
    }
    return { buffer: b, offset: 0, shape, dtype };
  }

  /** A uniform buffer of at least `bytes`, reused across submits (queue order keeps it safe). */
  uniformBuffer(bytes: number): GPUBuffer {
    if (!this.uniforms || this.uniforms.size < bytes) {
      this.uniforms?.destroy();
      const size = Math.max(64 * 1024, 2 ** Math.ceil(Math.log2(bytes)));
      this.uniforms = this.gpu.createBuffer({ size, label: 'params', usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
      this.uniformGeneration++;
      this.bindGroups.clear();
    }
    return this.uniforms;
  }

  private readbacks = new Map<number, GPUBuffer[]>();
  private timestampSets: { querySet: GPUQuerySet; resolve: GPUBuffer; read: GPUBuffer }[] = [];

  /**
   * A MAP_READ buffer of at least `bytes` for a stream's read, from a pool (by power-of-two
   * size): a step reads its tokens back every time, and a new buffer a step was one more Dawn
   * object a step for the host's GC to finalize. Give it back with releaseReadback once unmapped.
   */
  readbackBuffer(bytes: number): GPUBuffer {
    const size = Math.max(256, 2 ** Math.ceil(Math.log2(bytes)));
    return this.readbacks.get(size)?.pop() ?? this.gpu.createBuffer({ size, label: 'readback', usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  }

  releaseReadback(b: GPUBuffer): void {
    const free = this.readbacks.get(b.size) ?? [];
    if (free.length < 8) {
      free.push(b);
      this.readbacks.set(b.size, free);
    } else b.destroy();
  }

  /** Two timestamps' query set with its resolve and read buffers, from a pool (as readbackBuffer). */
  timestampSet(): { querySet: GPUQuerySet; resolve: GPUBuffer; read: GPUBuffer } {
    return (
      this.timestampSets.pop() ?? {
        querySet: this.gpu.createQuerySet({ type: 'timestamp', count: 2 }),
        resolve: this.gpu.createBuffer({ size: 256, label: 'timestamps', usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }),
        read: this.gpu.createBuffer({ size: 256, label: 'timestamps read', usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
      }
    );
  }

  releaseTimestampSet(t: { querySet: GPUQuerySet; resolve: GPUBuffer; read: GPUBuffer }): void {
    if (this.timestampSets.length < 8) this.timestampSets.push(t);
    else {
      t.querySet.destroy();
      t.resolve.destroy();
      t.read.destroy();
    }
  }

  private uniformHost?: { bytes: Uint8Array<ArrayBuffer>; view: DataView };
  /** The host-side params of a submit: one array of at least `bytes`, reused. */
  hostUniforms(bytes: number): { bytes: Uint8Array<ArrayBuffer>; view: DataView } {
    if (!this.uniformHost || this.uniformHost.bytes.byteLength < bytes) {
      const b = new Uint8Array(Math.max(64 * 1024, 2 ** Math.ceil(Math.log2(bytes))));
      this.uniformHost = { bytes: b, view: new DataView(b.buffer) };
    }
    return this.uniformHost;
  }

  stagingBuffer(bytes: number): GPUBuffer {
    if (!this.staging || this.staging.size < bytes) {
      this.staging?.destroy();
      const size = Math.max(64 * 1024, 2 ** Math.ceil(Math.log2(bytes)));
      this.staging = this.gpu.createBuffer({ size, label: 'staging', usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    }
    return this.staging;
  }

  /** The compiled kernel of a dispatch (read_write bindings where its tensors share a buffer). */
  kernel(d: Dispatch, shared = sharedBuffers(d)): Kernel {
    return this.kernels.get(d.file, shared.size ? [...d.flags, RW_ALL] : d.flags, d.overrides);
  }

  /**
   * The buffer range a kernel sees for tensor t: its bytes, or with `wide` the rest of its buffer from its offset (up
   * to the binding limit). The kernels bound their accesses by their params, never by the
   * binding's length, so a wide binding changes nothing they do; it makes the binding the same
   * from step to step while the tensor's rows change (a workspace tensor of this step's rows),
   * so that the bind group is made once, not once a step.
   */
  binding(t: Tensor, what: string, wide = false): GPUBufferBinding {
    const b = t.buffer as GpuBuffer;
    if (t.offset % this.info.bindingAlignment) {
      throw new UnsupportedError(`webgpu: ${what} starts at byte ${t.offset}, not a multiple of ${this.info.bindingAlignment}`);
    }
    const size = Math.min(b.size - t.offset, Math.ceil(storedBytes(t) / 16) * 16);
    if (size > this.info.maxBindingBytes) {
      throw new TensorTooLargeError(`webgpu: ${what} [${t.shape}] ${t.dtype} is ${size} bytes, over this adapter's binding limit of ${this.info.maxBindingBytes}`);
    }
    if (wide && WIDE_BINDINGS) return { buffer: b.gpu, offset: t.offset, size: Math.max(size, Math.floor(Math.min(b.size - t.offset, this.info.maxBindingBytes) / 16) * 16) };
    return { buffer: b.gpu, offset: t.offset, size };
  }
}

type Command =
  | { kind: 'dispatch'; d: Dispatch; kernel: Kernel; shared: Set<number>; op?: string }
  | { kind: 'copy'; src: Tensor; dst: Tensor }
  | { kind: 'write'; dst: Tensor; data: Uint8Array }
  | { kind: 'read'; src: Tensor; into?: GPUBuffer; resolve: (b: Uint8Array) => void; reject: (e: unknown) => void };

export class WebGpuStream implements CommandStream {
  private cmds: Command[] = [];
  constructor(private dev: WebGpuDevice, private options: StreamOptions) {}

  op<K extends OpName>(name: K, args: OpArgs[K]): this {
    const s = this.dev.supports(name, args);
    if (!s.ok) throw new UnsupportedError(s.reason);
    for (const d of planOp(this.dev, name, args)) this.pushDispatch(d, name);
    return this;
  }

  /** A raw dispatch of a kernel (benchmarks, and ops planned elsewhere). */
  dispatch(d: Dispatch): this {
    this.pushDispatch(d);
    return this;
  }

  private pushDispatch(d: Dispatch, op?: string): void {
    const shared = sharedBuffers(d);
    this.cmds.push({ kind: 'dispatch', d, kernel: this.dev.kernel(d, shared), shared, op });
  }

  copy(src: Tensor, dst: Tensor): this {
    if (tensorBytes(src) !== tensorBytes(dst) || tensorBytes(src) % 4 || src.offset % 4 || dst.offset % 4) throw new RangeError('copy: byte sizes differ, or sizes or offsets are not multiples of 4');
    this.cmds.push({ kind: 'copy', src, dst });
    return this;
  }

  write(dst: Tensor, data: ArrayBufferView): this {
    this.cmds.push({ kind: 'write', dst, data: pad4(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).slice() });
    return this;
  }

  read(src: Tensor): Promise<Uint8Array> {
    return new Promise((resolve, reject) => this.cmds.push({ kind: 'read', src, resolve, reject }));
  }

  submit(): Completion {
    const dev = this.dev;
    const gpu = dev.gpu;
    const t0 = performance.now();

    // params of every dispatch in one uniform upload; host writes in one staging upload
    const dispatches = this.cmds.filter((c) => c.kind === 'dispatch');
    // one host array reused by every submit (writeBuffer copies it at once; every params field is
    // written per dispatch): a new one a step was ~1 MB of garbage a step for the host's GC
    const uniformSize = Math.max(UNIFORM_ALIGN, dispatches.length * UNIFORM_ALIGN);
    const { bytes: uniformBytes, view } = dev.hostUniforms(uniformSize);
    const writes = this.cmds.filter((c): c is { kind: 'write'; dst: Tensor; data: Uint8Array } => c.kind === 'write');
    const stagingSize = writes.reduce((s, w) => s + Math.ceil(w.data.byteLength / 4) * 4, 0);
    const uniforms = dev.uniformBuffer(uniformSize);
    const staging = stagingSize ? dev.stagingBuffer(stagingSize) : undefined;

    const profile = dev.profile && dev.info.features.timestamps ? dev.profile : undefined;
    const timing = this.options.timing && dev.info.features.timestamps && !profile;
    const tsSet = timing ? dev.timestampSet() : undefined;
    const querySet = tsSet?.querySet;
    const numPasses = countPasses(this.cmds);
    // profiled: every dispatch in a pass of its own, timestamps at both ends (profile.ts)
    const profiled: string[] = [];
    const numProfiled = profile ? Math.min(dispatches.length, PROFILE_MAX_DISPATCHES) : 0;
    const profileSet = numProfiled ? gpu.createQuerySet({ type: 'timestamp', count: 2 * numProfiled }) : undefined;

    const enc = gpu.createCommandEncoder({ label: this.options.label });
    let pass: GPUComputePassEncoder | undefined;
    let passIndex = 0;
    let slot = 0;
    let stagingOff = 0;
    const endPass = () => {
      pass?.end();
      pass = undefined;
    };
    for (const c of this.cmds) {
      if (c.kind === 'dispatch') {
        if (profileSet) {
          endPass();
          if (profiled.length < numProfiled) {
            const i = profiled.length;
            profiled.push(profileKey(c.op, c.d.file, c.d.flags, c.d.params));
            pass = enc.beginComputePass({ timestampWrites: { querySet: profileSet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
          } else {
            profile!.untimed++;
            pass = enc.beginComputePass();
          }
        } else if (!pass) {
          const tw: GPUComputePassTimestampWrites | undefined = querySet
            ? {
                querySet,
                ...(passIndex === 0 ? { beginningOfPassWriteIndex: 0 } : {}),
                ...(passIndex === numPasses - 1 ? { endOfPassWriteIndex: 1 } : {}),
              }
            : undefined;
          pass = enc.beginComputePass(tw && (passIndex === 0 || passIndex === numPasses - 1) ? { timestampWrites: tw } : {});
          passIndex++;
        }
        const { d, kernel, shared } = c;
        const offset = slot * UNIFORM_ALIGN;
        slot++;
        writeParams(view, offset, kernel, d.params);
        pass.setPipeline(kernel.pipeline);
        pass.setBindGroup(0, bindGroup(dev, d, kernel, uniforms, offset, shared));
        pass.dispatchWorkgroups(d.grid[0], d.grid[1] ?? 1, d.grid[2] ?? 1);
      } else if (c.kind === 'copy') {
        endPass();
        // a copy needs 4-byte alignment only, not a binding's (KV blocks can be 128 bytes)
        enc.copyBufferToBuffer((c.src.buffer as GpuBuffer).gpu, c.src.offset, (c.dst.buffer as GpuBuffer).gpu, c.dst.offset, tensorBytes(c.src));
      } else if (c.kind === 'read') {
        endPass();
        const size = Math.ceil(tensorBytes(c.src) / 4) * 4;
        c.into = dev.readbackBuffer(size);
        enc.copyBufferToBuffer((c.src.buffer as GpuBuffer).gpu, c.src.offset, c.into, 0, size);
      } else {
        endPass();
        const n = Math.ceil(c.data.byteLength / 4) * 4;
        gpu.queue.writeBuffer(staging!, stagingOff, c.data as Uint8Array<ArrayBuffer>);
        enc.copyBufferToBuffer(staging!, stagingOff, (c.dst.buffer as GpuBuffer).gpu, c.dst.offset, n);
        stagingOff += n;
      }
    }
    endPass();
    if (slot) gpu.queue.writeBuffer(uniforms, 0, uniformBytes, 0, slot * UNIFORM_ALIGN);

    let tsRead: GPUBuffer | undefined;
    if (tsSet && numPasses > 0) {
      tsRead = tsSet.read;
      enc.resolveQuerySet(tsSet.querySet, 0, 2, tsSet.resolve, 0);
      enc.copyBufferToBuffer(tsSet.resolve, 0, tsRead, 0, 16);
    } else if (tsSet) dev.releaseTimestampSet(tsSet);
    let profileRead: GPUBuffer | undefined;
    let profileResolve: GPUBuffer | undefined;
    if (profileSet) {
      const bytes = 16 * numProfiled;
      profileResolve = gpu.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
      profileRead = gpu.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      enc.resolveQuerySet(profileSet, 0, 2 * numProfiled, profileResolve, 0);
      enc.copyBufferToBuffer(profileResolve, 0, profileRead, 0, bytes);
    }
    const tEncoded = performance.now();
    gpu.queue.submit([enc.finish()]);
    const h = dev.hostStats;
    h.submits++;
    h.encodeMs += tEncoded - t0;
    h.submitMs += performance.now() - tEncoded;

    const reads = this.cmds.filter((c) => c.kind === 'read');
    this.cmds = [];
    for (const r of reads) {
      const buf = r.into!;
      buf.mapAsync(GPUMapMode.READ).then(
        () => {
          const out = new Uint8Array(buf.getMappedRange(), 0, tensorBytes(r.src)).slice();
          buf.unmap();
          dev.releaseReadback(buf);
          r.resolve(out);
        },
        (e) => r.reject(e),
      );
    }
    // asked now, not when awaited: onSubmittedWorkDone covers all work submitted before the call,
    // and a later call would also wait for the streams submitted since (the engine's next step)
    const donePromise = gpu.queue.onSubmittedWorkDone().then(() => dev.throwErrors());
    donePromise.catch(() => {}); // reported to whoever awaits done(); nobody else
    const done = () => donePromise;
    // the timestamps are mapped now for the same reason: a map asked for later waits for the
    // work submitted by then, the engine's next step included
    const span = tsRead?.mapAsync(GPUMapMode.READ, 0, 16).then((): [bigint, bigint] => {
      const t = new BigInt64Array(tsRead.getMappedRange(0, 16).slice(0));
      tsRead.unmap();
      dev.releaseTimestampSet(tsSet!);
      return [t[0], t[1]];
    });
    span?.catch(() => {}); // reported to whoever awaits elapsedMs() or gpuSpanNs()
    const ts = span?.then(([b, e]) => Number(e - b) / 1e6);
    ts?.catch(() => {});
    // profiled: the stream's time is its first dispatch's start to its last one's end
    const profileTs = profileRead?.mapAsync(GPUMapMode.READ).then(() => {
      const t = new BigInt64Array(profileRead.getMappedRange().slice(0));
      profileRead.unmap();
      profileRead.destroy();
      profileResolve?.destroy();
      profileSet?.destroy();
      profiled.forEach((key, i) => profile!.add(key, Math.max(0, Number(t[2 * i + 1] - t[2 * i])) / 1e6));
      return Math.max(0, Number(t[2 * profiled.length - 1] - t[0]) / 1e6);
    });
    profileTs?.catch(() => {});
    return {
      done,
      elapsedMs: async () => {
        await done();
        const wall = performance.now() - t0;
        return ts ?? profileTs ?? wall;
      },
      gpuSpanNs: async () => {
        await done();
        return span;
      },
    };
  }
}

function countPasses(cmds: Command[]): number {
  let n = 0;
  let open = false;
  for (const c of cmds) {
    if (c.kind === 'dispatch') {
      if (!open) n++;
      open = true;
    } else open = false;
  }
  return n;
}

function writeParams(view: DataView, offset: number, kernel: Kernel, params: Record<string, number>): void {
  if (!kernel.params) return;
  for (const f of kernel.params.fields) {
    const v = params[f.name];
    if (v === undefined) throw new Error(`${kernel.key}: params.${f.name} not given`);
    if (f.type === 'f32') view.setFloat32(offset + f.offset, v, true);
    else if (f.type === 'i32') view.setInt32(offset + f.offset, v, true);
    else view.setUint32(offset + f.offset, v, true);
  }
}

/**
 * The bind group of a dispatch, cached: a step records the same kernels over the same
 * workspace buffers at the same params slots every time, and creating a bind group costs
 * several microseconds of CPU per dispatch. Buffer ids are never reused, so an entry that
 * names a freed buffer is simply never hit again; the cache is cleared when it grows large.
 */
function bindGroup(dev: WebGpuDevice, d: Dispatch, kernel: Kernel, uniforms: GPUBuffer, offset: number, shared: Set<number>): GPUBindGroup {
  // a tensor whose buffer no other tensor of the dispatch uses is bound wide (WebGpuDevice.binding):
  // widened, two bindings of one buffer could overlap, which WebGPU forbids where one is written
  const ranges = kernel.bindings.map((b) => {
    if (b.kind === 'uniform') return undefined;
    const t = d.tensors[b.name];
    if (!t) throw new Error(`${kernel.key}: tensor '${b.name}' not given`);
    return dev.binding(t, `${kernel.key} ${b.name}`, !shared.has(t.buffer.id));
  });
  let key = `${kernel.key}#${dev.uniformGeneration}@${offset}`;
  kernel.bindings.forEach((b, i) => {
    const r = ranges[i];
    if (r) key += `|${(r.buffer as any).__id ?? ((r.buffer as any).__id = nextGpuBufferKey++)}:${r.offset}:${r.size}`;
  });
  let g = dev.bindGroups.get(key);
  if (!g) {
    const entries: GPUBindGroupEntry[] = kernel.bindings.map((b, i) =>
      b.kind === 'uniform' ? { binding: b.binding, resource: { buffer: uniforms, offset, size: kernel.params!.size } } : { binding: b.binding, resource: ranges[i]! },
    );
    g = dev.gpu.createBindGroup({ layout: kernel.layout, entries });
    dev.hostStats.bindGroups++;
    if (dev.bindGroups.size >= 8192) dev.bindGroups.clear();
    dev.bindGroups.set(key, g);
  }
  return g;
}

/** The ids of the buffers that more than one tensor of a dispatch uses (nearly always none). */
function sharedBuffers(d: Dispatch): Set<number> {
  const shared = new Set<number>();
  const seen: number[] = [];
  for (const t of Object.values(d.tensors)) {
    if (seen.includes(t.buffer.id)) shared.add(t.buffer.id);
    else seen.push(t.buffer.id);
  }
  return shared;
}

let nextGpuBufferKey = 1;
/** PARALLM_WEBGPU_WIDE_BINDINGS=0 binds every tensor to its own bytes only (A/B runs). */
const WIDE_BINDINGS = process.env.PARALLM_WEBGPU_WIDE_BINDINGS !== '0';

/** A weight the tiled layout can hold: 2-D f16, row-major, k a multiple of the tile's k-slice. */
export function canTile(w: Tensor): boolean {
  return !w.layout && w.dtype === 'f16' && w.shape.length === 2 && w.shape[1] % WEIGHT_TILE_K === 0 && w.shape[0] > 0;
}

// The native backend: CUDA or HIP kernels (native/kernels) through the Node-API addon. Device
// memory comes from a few large chunks carved by ./arena.ts; a command stream records ops,
// copies, writes and reads, and at submit enqueues them in order on the addon's one GPU stream
// and resolves its reads when the GPU has passed the submission's last event.

import type { Completion, CommandStream, Device, DeviceBuffer, DeviceInfo, MemoryInfo, StreamOptions, Support, Tensor } from '../device.ts';
import { TensorTooLargeError, UnsupportedError } from '../device.ts';
import { type OpArgs, type OpName, checkOp } from '../ops.ts';
import { tensorBytes } from '../tensor.ts';
import { type NativeAddon, type OpenInfo, addonPath, loadAddon, requireGpu } from './addon.ts';
import { Arena } from './arena.ts';
import { type Launch, Launcher, type PlanContext, launchesKey, runOp, sameLaunches, supportsOp } from './ops.ts';

export interface NativeOptions {
  /** The addon to load (default: PARALLM_NATIVE_ADDON, else native/build/parallm_native.node). */
  addon?: string;
  /** Size of the shared device-memory chunks in bytes (default PARALLM_NATIVE_CHUNK_MIB or 256 MiB). */
  chunkBytes?: number;
  /** Replay repeated runs of ops as CUDA/HIP graphs (default: PARALLM_NATIVE_GRAPHS=1). */
  graphs?: boolean;
}

/** Fewest kernel launches in a run of ops that is worth a graph. */
export const GRAPH_MIN_LAUNCHES = 8;
/** Graphs kept (least recently used evicted): decode steps per padded batch size and table width. */
export const GRAPH_CACHE_SIZE = 64;

interface NativeBuffer extends DeviceBuffer {
  ptr: number;
}

let nextId = 1;

export class NativeDevice implements Device {
  readonly info: DeviceInfo;
  readonly gpu: OpenInfo;
  private arena: Arena;
  private live = new Set<NativeBuffer>();
  private scratches = new Map<string, { ptr: number; bytes: number }>();
  private launcher: Launcher;
  private plan: PlanContext;
  private destroyed = false;
  /** Runs of launches seen, by launchesKey, in least-recently-used order; `id` once captured. */
  private graphs = new Map<string, { launches: Launch[]; id?: number }>();
  readonly useGraphs: boolean;
  /** How runs of ops were executed: eagerly (first sighting or too short), captured, replayed. */
  readonly graphStats = { eager: 0, captured: 0, replayed: 0 };

  static async open(options: NativeOptions = {}): Promise<NativeDevice> {
    const addon = loadAddon(addonPath(options.addon));
    requireGpu(addon);
    return new NativeDevice(addon, options);
  }

  private constructor(
    readonly addon: NativeAddon,
    options: NativeOptions,
  ) {
    const device = Number(process.env.PARALLM_NATIVE_DEVICE ?? 0);
    this.gpu = addon.open(device);
    const g = this.gpu;
    this.info = {
      backend: 'native',
      name: g.name,
      description: `${g.vendor} ${g.vendor === 'CUDA' ? `sm_${g.major}${g.minor}` : `gfx arch ${g.major}.${g.minor}`}, driver ${g.driverVersion}, runtime ${g.runtimeVersion}; ` +
        (g.blasLoaded ? `BLAS ${g.blasPath}` : `no BLAS (${g.blasError})`),
      features: { f16: true, subgroups: true, subgroupMatrix: g.blasLoaded, timestamps: true, activations16: g.blasLoaded },
      // no bindings here: a kernel takes any pointer; the largest tensor is the memory itself
      maxBindingBytes: g.totalBytes,
      maxBufferBytes: g.totalBytes,
      bindingAlignment: 4,
      // one allocation holds a whole KV pool
      maxPoolParts: 1,
    };
    const chunkMiB = Number(process.env.PARALLM_NATIVE_CHUNK_MIB ?? 256);
    this.arena = new Arena({ malloc: (b) => addon.malloc(b), free: (p) => addon.free(p) }, options.chunkBytes ?? chunkMiB * 2 ** 20);
    this.launcher = new Launcher(addon);
    this.useGraphs = options.graphs ?? process.env.PARALLM_NATIVE_GRAPHS === '1';
    this.plan = {
      launcher: this.launcher,
      blas: g.blasLoaded,
      ptr: (t) => this.ptr(t),
      scratch: (name, bytes, zero) => this.scratch(name, bytes, zero),
    };
  }

  alloc(bytes: number, label = 'buffer'): DeviceBuffer {
    if (bytes > this.info.maxBufferBytes) throw new TensorTooLargeError(`native: cannot allocate ${label} of ${bytes} bytes: the GPU has ${this.info.maxBufferBytes}`);
    const ptr = this.arena.alloc(Math.max(bytes, 4));
    const b: NativeBuffer = { id: nextId++, size: bytes, label, device: this, ptr };
    this.live.add(b);
    return b;
  }

  free(buffer: DeviceBuffer): void {
    const b = buffer as NativeBuffer;
    if (!this.live.delete(b)) return; // freeing twice is harmless
    // work queued on the stream that still reads this memory runs before anything queued later
    // can write a new tenant's data into it: one stream orders them
    this.arena.free(b.ptr);
  }

  memory(): MemoryInfo {
    let allocated = 0;
    for (const b of this.live) allocated += b.size;
    return { allocated, total: this.gpu.totalBytes };
  }

  upload(dst: Tensor, data: ArrayBufferView): void {
    this.checkRange(dst, data.byteLength, 'upload');
    this.addon.upload(this.ptr(dst), data);
  }

  async download(src: Tensor): Promise<Uint8Array> {
    const s = this.stream();
    const p = s.read(src);
    s.submit();
    return p;
  }

  supports<K extends OpName>(name: K, args: OpArgs[K]): Support {
    const c = checkOp(name, args);
    return c.ok ? supportsOp(this.gpu.blasLoaded, this.gpu.blasError, name, args) : c;
  }

  stream(options: StreamOptions = {}): CommandStream {
    return new NativeStream(this, options);
  }

  async sync(): Promise<void> {
    await this.stream().submit().done();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const g of this.graphs.values()) if (g.id !== undefined) this.addon.graphDestroy(g.id);
    this.graphs.clear();
    this.live.clear();
    this.scratches.clear();
    this.arena.release();
  }

  /** Device address of a tensor's first byte. */
  ptr(t: Tensor): number {
    const b = t.buffer as NativeBuffer;
    if (b.device !== this) throw new Error(`native: tensor ${b.label} belongs to another device`);
    if (!this.live.has(b)) throw new Error(`native: tensor ${b.label} was freed`);
    return b.ptr + t.offset;
  }

  checkRange(t: Tensor, bytes: number, what: string): void {
    if (t.offset + bytes > t.buffer.size) throw new RangeError(`native: ${what} of ${bytes} bytes at ${t.offset} runs past the end of ${t.buffer.label} (${t.buffer.size} bytes)`);
  }

  /**
   * A device-owned scratch region, grown on demand. Ops that use one in sequence are ordered by
   * the one stream. A `zero` scratch is cleared when made and must be left zero by its user.
   */
  scratch(name: string, bytes: number, zero = false): number {
    let s = this.scratches.get(name);
    if (!s || s.bytes < bytes) {
      if (s) this.arena.free(s.ptr);
      const size = Math.max(bytes, (s?.bytes ?? 0) * 2, 256);
      s = { ptr: this.arena.alloc(size), bytes: size };
      if (zero) this.addon.memset(s.ptr, 0, size);
      this.scratches.set(name, s);
    }
    return s.ptr;
  }

  /**
   * Enqueues a run of consecutive ops (streams call this at submit). With graphs on, the run is
   * planned first (every allocation and memset happens then, outside any capture) into its
   * launches; a run whose launches (kernels, pointers, sizes) equal one seen before is captured
   * into a CUDA/HIP graph on its second sighting and replayed with one launch from then on. A
   * graph does exactly what its launches do, so a hit needs nothing else to be equal: a decode
   * step repeats its launches as long as its batch size and block-table width stay the same.
   */
  enqueueOps(ops: { name: OpName; args: unknown }[]): void {
    if (!this.useGraphs) {
      for (const o of ops) runOp(this.plan, o.name, o.args as never);
      return;
    }
    const launches: Launch[] = [];
    this.launcher.collecting = launches;
    try {
      for (const o of ops) runOp(this.plan, o.name, o.args as never);
    } finally {
      this.launcher.collecting = undefined;
    }
    const addon = this.addon;
    const eager = () => {
      for (const l of launches) addon.launch(l.code, l.args);
      this.graphStats.eager++;
    };
    if (launches.length < GRAPH_MIN_LAUNCHES) return eager();
    const key = launchesKey(launches);
    const seen = this.graphs.get(key);
    if (!seen || !sameLaunches(seen.launches, launches)) {
      eager();
      if (seen?.id !== undefined) addon.graphDestroy(seen.id); // a hash collision: keep the newer run
      this.graphs.delete(key);
      this.graphs.set(key, { launches });
      this.evictGraphs();
      return;
    }
    this.graphs.delete(key); // most recently used last
    this.graphs.set(key, seen);
    if (seen.id === undefined) {
      addon.captureBegin();
      try {
        for (const l of launches) addon.launch(l.code, l.args);
      } catch (e) {
        try {
          addon.captureEnd();
        } catch {}
        throw e;
      }
      seen.id = addon.captureEnd();
      this.graphStats.captured++;
    } else {
      this.graphStats.replayed++;
    }
    addon.graphLaunch(seen.id);
  }

  private evictGraphs(): void {
    while (this.graphs.size > GRAPH_CACHE_SIZE) {
      const [key, g] = this.graphs.entries().next().value as [string, { id?: number }];
      if (g.id !== undefined) this.addon.graphDestroy(g.id);
      this.graphs.delete(key);
    }
  }
}

type Command =
  | { kind: 'op'; name: OpName; args: unknown }
  | { kind: 'copy'; src: Tensor; dst: Tensor }
  | { kind: 'write'; dst: Tensor; data: Uint8Array }
  | { kind: 'read'; src: Tensor; promise: Promise<Uint8Array>; resolve: (b: Uint8Array) => void; reject: (e: unknown) => void };

class NativeStream implements CommandStream {
  private cmds: Command[] = [];
  constructor(
    private dev: NativeDevice,
    private options: StreamOptions,
  ) {}

  op<K extends OpName>(name: K, args: OpArgs[K]): this {
    const s = this.dev.supports(name, args);
    if (!s.ok) throw new UnsupportedError(s.reason);
    this.cmds.push({ kind: 'op', name, args });
    return this;
  }

  copy(src: Tensor, dst: Tensor): this {
    if (tensorBytes(src) !== tensorBytes(dst)) throw new RangeError('copy: byte sizes differ');
    this.cmds.push({ kind: 'copy', src, dst });
    return this;
  }

  write(dst: Tensor, data: ArrayBufferView): this {
    this.dev.checkRange(dst, data.byteLength, 'write');
    this.cmds.push({ kind: 'write', dst, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice() });
    return this;
  }

  read(src: Tensor): Promise<Uint8Array> {
    let resolve!: (b: Uint8Array) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<Uint8Array>((res, rej) => ((resolve = res), (reject = rej)));
    this.cmds.push({ kind: 'read', src, promise, resolve, reject });
    return promise;
  }

  submit(): Completion {
    const { dev } = this;
    const addon = dev.addon;
    const cmds = this.cmds;
    this.cmds = [];
    const t0 = performance.now();
    const reads: { index: number; c: Extract<Command, { kind: 'read' }> }[] = [];
    addon.begin(this.options.timing ?? false);
    try {
      // consecutive ops go to the device as one run (a graph candidate)
      let run: { name: OpName; args: unknown }[] = [];
      const flush = () => {
        if (run.length) dev.enqueueOps(run);
        run = [];
      };
      for (const c of cmds) {
        if (c.kind === 'op') {
          run.push(c);
          continue;
        }
        flush();
        if (c.kind === 'copy') addon.copy(dev.ptr(c.dst), dev.ptr(c.src), tensorBytes(c.src));
        else if (c.kind === 'write') addon.write(dev.ptr(c.dst), c.data);
        else reads.push({ index: addon.read(dev.ptr(c.src), tensorBytes(c.src)), c });
      }
      flush();
    } catch (e) {
      addon.abort();
      // submit throws: its reads fail too, without an unhandled rejection where nobody awaits them
      for (const r of cmds) {
        if (r.kind !== 'read') continue;
        r.promise.catch(() => {});
        r.reject(e);
      }
      throw e;
    }
    const result = addon.end();
    result.then(
      (r) => {
        for (const { index, c } of reads) c.resolve(r.reads[index]);
      },
      (e) => {
        for (const { c } of reads) c.reject(e);
      },
    );
    return {
      done: () => result.then(() => undefined),
      elapsedMs: () => result.then((r) => r.ms ?? performance.now() - t0),
    };
  }
}

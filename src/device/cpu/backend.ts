// The cpu backend: host memory and the reference ops. It is the oracle of the parity tests and
// runs the model where no GPU is present (slowly).

import type { Completion, CommandStream, Device, DeviceBuffer, DeviceInfo, MemoryInfo, StreamOptions, Support, Tensor } from '../device.ts';
import { UnsupportedError } from '../device.ts';
import { decode, encode } from '../dtype.ts';
import { type KvPool, MAX_KV_PARTS, poolBlock, poolBlocks, poolParts } from '../kv-pool.ts';
import { type OpArgs, type OpName, checkOp } from '../ops.ts';
import { tensorBytes } from '../tensor.ts';
import * as attn from './attention.ts';
import * as ref from './reference.ts';
import * as sam from './sampling.ts';

function cacheShape(p: KvPool): attn.CacheShape {
  const [, blockSize, numKvHeads, headSize] = poolParts(p)[0].shape;
  return { numBlocks: poolBlocks(p), blockSize, numKvHeads, headSize };
}

interface CpuBuffer extends DeviceBuffer {
  data: Uint8Array;
}

let nextId = 1;

export class CpuDevice implements Device {
  readonly info: DeviceInfo = {
    backend: 'cpu',
    name: 'cpu',
    description: 'reference (TypeScript, float64 accumulation)',
    features: { f16: true, subgroups: false, subgroupMatrix: false, timestamps: false },
    maxBindingBytes: 2 ** 31,
    maxPoolParts: MAX_KV_PARTS,
    maxBufferBytes: 2 ** 31,
    bindingAlignment: 4,
  };
  private allocated = 0;
  private live = new Set<CpuBuffer>();

  alloc(bytes: number, label = 'buffer'): DeviceBuffer {
    const b: CpuBuffer = { id: nextId++, size: bytes, label, device: this, data: new Uint8Array(bytes) };
    this.allocated += bytes;
    this.live.add(b);
    return b;
  }

  free(buffer: DeviceBuffer): void {
    if (this.live.delete(buffer as CpuBuffer)) this.allocated -= buffer.size;
  }

  memory(): MemoryInfo {
    return { allocated: this.allocated };
  }

  upload(dst: Tensor, data: ArrayBufferView): void {
    const src = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const b = dst.buffer as CpuBuffer;
    if (dst.offset + src.byteLength > b.size) throw new RangeError(`upload of ${src.byteLength} bytes past the end of ${b.label}`);
    b.data.set(src, dst.offset);
  }

  async download(src: Tensor): Promise<Uint8Array> {
    return this.bytes(src).slice();
  }

  supports<K extends OpName>(name: K, args: OpArgs[K]): Support {
    return checkOp(name, args);
  }

  stream(options: StreamOptions = {}): CommandStream {
    return new CpuStream(this, options);
  }

  async sync(): Promise<void> {}

  destroy(): void {
    this.live.clear();
    this.allocated = 0;
  }

  bytes(t: Tensor): Uint8Array {
    const b = t.buffer as CpuBuffer;
    return b.data.subarray(t.offset, t.offset + tensorBytes(t));
  }

  read(t: Tensor): Float64Array | Float32Array | Int32Array | Uint32Array {
    return decode(this.bytes(t), t.dtype);
  }

  write(t: Tensor, values: ArrayLike<number>): void {
    this.bytes(t).set(encode(values, t.dtype));
  }

  /** Runs one op now. */
  run<K extends OpName>(name: K, args: OpArgs[K]): void {
    const s = checkOp(name, args);
    if (!s.ok) throw new UnsupportedError(s.reason);
    runOp(this, name, args);
  }
}

function runOp(d: CpuDevice, name: OpName, args: any): void {
  switch (name) {
    case 'embedding': {
      const a = args as OpArgs['embedding'];
      d.write(a.out, ref.embedding(d.read(a.ids), d.read(a.table), a.table.shape[1]));
      return;
    }
    case 'rms_norm': {
      const a = args as OpArgs['rms_norm'];
      const [n, h] = a.x.shape;
      const [out, res] = ref.rmsNorm(d.read(a.x), d.read(a.weight), n, h, a.eps, a.residual && d.read(a.residual));
      if (a.residual && res) d.write(a.residual, res);
      d.write(a.out, out);
      return;
    }
    case 'rope': {
      const a = args as OpArgs['rope'];
      const [n, w] = a.x.shape;
      d.write(a.x, ref.rope(d.read(a.x), d.read(a.positions), d.read(a.cosSin), a.cosSin.shape[1], n, w, a.numHeads, a.headSize, a.interleaved));
      return;
    }
    case 'silu_and_mul': {
      const a = args as OpArgs['silu_and_mul'];
      d.write(a.out, ref.siluAndMul(d.read(a.x), a.x.shape[0], a.out.shape[1]));
      return;
    }
    case 'matmul': {
      const a = args as OpArgs['matmul'];
      const [m, k] = a.a.shape;
      d.write(a.out, ref.matmul(d.read(a.a), d.read(a.w), m, a.w.shape[0], k, a.bias && d.read(a.bias)));
      return;
    }
    case 'softmax': {
      const a = args as OpArgs['softmax'];
      d.write(a.out, ref.softmax(d.read(a.x), a.x.shape[0], a.x.shape[1]));
      return;
    }
    case 'argmax': {
      const a = args as OpArgs['argmax'];
      d.write(a.out, ref.argmax(d.read(a.x), a.x.shape[0], a.x.shape[1]));
      return;
    }
    case 'sample': {
      const a = args as OpArgs['sample'];
      const [n, v] = a.logits.shape;
      d.write(a.out, ref.sample(d.read(a.logits), n, v, d.read(a.temperature), d.read(a.topK), d.read(a.topP), d.read(a.minP), d.read(a.draws)));
      return;
    }
    case 'apply_penalties': {
      const a = args as OpArgs['apply_penalties'];
      const [n, v] = a.logits.shape;
      const [p, o, b] = [a.promptIds.shape[1], a.outputIds.shape[1], a.bannedIds.shape[1]];
      const out = sam.applyPenalties(d.read(a.logits), n, v, d.read(a.promptIds), p, d.read(a.outputIds), o, d.read(a.repetition), d.read(a.frequency), d.read(a.presence), d.read(a.bannedIds), b);
      d.write(a.logits, out);
      return;
    }
    case 'logprobs': {
      const a = args as OpArgs['logprobs'];
      const [n, v] = a.logits.shape;
      const r = sam.logprobs(d.read(a.logits), n, v, d.read(a.ids), a.topN);
      d.write(a.outLogprob, r.logprob);
      if (a.topN > 0) {
        d.write(a.outTopIds!, r.topIds);
        d.write(a.outTopLogprobs!, r.topLogprobs);
      }
      return;
    }
    case 'copy': {
      const a = args as OpArgs['copy'];
      d.bytes(a.out).set(d.bytes(a.x));
      return;
    }
    case 'resolve_tokens': {
      const a = args as OpArgs['resolve_tokens'];
      d.write(a.ids, ref.resolveTokens(d.read(a.ids), d.read(a.sampled)));
      return;
    }
    case 'reshape_and_cache': {
      const a = args as OpArgs['reshape_and_cache'];
      const slots = d.read(a.slotMapping);
      cacheRows(d, a.keyCache, slots, d.read(a.key), 0, a.key.shape[1]);
      cacheRows(d, a.valueCache, slots, d.read(a.value), 0, a.value.shape[1]);
      return;
    }
    case 'qkv_rope_cache': {
      // rope on the q and k heads, which lie side by side at the start of each row, rounded to
      // f32 as rope's output tensor is; then q out and k, v into the cache as reshape_and_cache
      const a = args as OpArgs['qkv_rope_cache'];
      const [n, width] = a.qkv.shape;
      const qw = a.numHeads * a.headSize;
      const kvw = a.numKvHeads * a.headSize;
      const x = Float32Array.from(ref.rope(d.read(a.qkv), d.read(a.positions), d.read(a.cosSin), a.cosSin.shape[1], n, width, a.numHeads + a.numKvHeads, a.headSize));
      const q = new Float32Array(n * qw);
      for (let t = 0; t < n; t++) q.set(x.subarray(t * width, t * width + qw), t * qw);
      d.write(a.q, q);
      const slots = d.read(a.slotMapping);
      cacheRows(d, a.keyCache, slots, x, qw, width);
      cacheRows(d, a.valueCache, slots, x, qw + kvw, width);
      return;
    }
    case 'copy_blocks': {
      // pair by pair, in order, as the kernel's workgroups would if pairs never overlap
      const a = args as OpArgs['copy_blocks'];
      const pairs = d.read(a.pairs);
      for (const cache of [a.keyCache, a.valueCache]) {
        for (let i = 0; i < pairs.length; i += 2) d.bytes(poolBlock(cache, pairs[i + 1])).set(d.bytes(poolBlock(cache, pairs[i])));
      }
      return;
    }
    case 'paged_attention': {
      const a = args as OpArgs['paged_attention'];
      const c = cacheShape(a.keyCache);
      const [kc, vc, tables, cc] = usedBlocks(d, a.keyCache, a.valueCache, a.blockTables);
      const out = attn.pagedAttention(d.read(a.q), kc, vc, tables, a.blockTables.shape[1], d.read(a.contextLens), cc ?? c, a.q.shape[1] / c.headSize, a.scale);
      d.write(a.out, out);
      return;
    }
    case 'prefill_attention': {
      const a = args as OpArgs['prefill_attention'];
      const c = cacheShape(a.keyCache);
      const [kc, vc, tables, cc] = usedBlocks(d, a.keyCache, a.valueCache, a.blockTables);
      const out = attn.prefillAttention(d.read(a.q), kc, vc, tables, a.blockTables.shape[1], d.read(a.queryStarts), d.read(a.contextLens), cc ?? c, a.q.shape[1] / c.headSize, a.scale);
      d.write(a.out, out);
      return;
    }
  }
}

/**
 * Writes row t of x (its pool-row-wide slice from column `from`, rows `stride` apart) into the
 * pool at slots[t], in place (a pool can be far larger than a step); negative slots are skipped.
 */
function cacheRows(d: CpuDevice, cache: KvPool, slots: ArrayLike<number>, x: Float32Array | Float64Array | Int32Array | Uint32Array, from: number, stride: number): void {
  const [, blockSize, kvh, hs] = poolParts(cache)[0].shape;
  const w = kvh * hs;
  for (let t = 0; t < slots.length; t++) {
    if (slots[t] < 0) continue;
    const block = d.bytes(poolBlock(cache, Math.floor(slots[t] / blockSize)));
    const rowBytes = block.byteLength / blockSize;
    block.set(encode(x.subarray(t * stride + from, t * stride + from + w), poolParts(cache)[0].dtype), (slots[t] % blockSize) * rowBytes);
  }
}

/**
 * The blocks the block tables name, decoded and packed, with the tables renumbered into them:
 * attention reads a handful of blocks of a pool that may hold hundreds of thousands (and may be
 * split into parts: poolBlock finds each block's part).
 */
function usedBlocks(d: CpuDevice, keyCache: KvPool, valueCache: KvPool, blockTables: Tensor): [Float64Array | Float32Array, Float64Array | Float32Array, Int32Array, attn.CacheShape] {
  const c = cacheShape(keyCache);
  const tables = Int32Array.from(d.read(blockTables));
  const ids = [...new Set(Array.from(tables).filter((b) => b >= 0 && b < c.numBlocks))];
  const index = new Map(ids.map((b, i) => [b, i]));
  const dtype = poolParts(keyCache)[0].dtype;
  const pack = (p: KvPool) => {
    const blocks = ids.map((b) => d.bytes(poolBlock(p, b)));
    const blockBytes = blocks[0]?.byteLength ?? 0;
    const out = new Uint8Array(ids.length * blockBytes);
    blocks.forEach((b, i) => out.set(b, i * blockBytes));
    return decode(out, dtype) as Float64Array | Float32Array;
  };
  for (let i = 0; i < tables.length; i++) tables[i] = index.get(tables[i]) ?? 0;
  return [pack(keyCache), pack(valueCache), tables, { ...c, numBlocks: ids.length }];
}

class CpuStream implements CommandStream {
  private cmds: (() => void)[] = [];
  constructor(private d: CpuDevice, private options: StreamOptions) {}

  op<K extends OpName>(name: K, args: OpArgs[K]): this {
    const s = checkOp(name, args);
    if (!s.ok) throw new UnsupportedError(s.reason);
    this.cmds.push(() => runOp(this.d, name, args));
    return this;
  }

  copy(src: Tensor, dst: Tensor): this {
    if (tensorBytes(src) !== tensorBytes(dst)) throw new RangeError('copy: byte sizes differ');
    this.cmds.push(() => this.d.bytes(dst).set(this.d.bytes(src)));
    return this;
  }

  write(dst: Tensor, data: ArrayBufferView): this {
    const copy = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
    this.cmds.push(() => this.d.upload(dst, copy));
    return this;
  }

  read(src: Tensor): Promise<Uint8Array> {
    return new Promise((resolve) => this.cmds.push(() => resolve(this.d.bytes(src).slice())));
  }

  submit(): Completion {
    const t0 = performance.now();
    const b = process.hrtime.bigint();
    for (const c of this.cmds) c();
    const span: [bigint, bigint] = [b, process.hrtime.bigint()];
    const ms = performance.now() - t0;
    this.cmds = [];
    // the CPU is this backend's device: its spans are on the host's clock
    return { done: async () => {}, elapsedMs: async () => ms, gpuSpanNs: async () => span };
  }
}

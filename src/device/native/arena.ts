// Device memory for the native backend: large chunks from the GPU's allocator, carved here into
// tensors' buffers (first fit, 256-byte aligned, neighbours merged on free), as a caching
// allocator does: cudaMalloc and cudaFree are slow and cudaFree synchronises the device.
// A chunk made for one oversized request goes back to the GPU when that buffer is freed; the
// shared chunks stay for reuse until the device is destroyed.

export interface ChunkSource {
  malloc(bytes: number): number;
  free(ptr: number): void;
}

interface Chunk {
  base: number;
  size: number;
  /** free ranges, sorted by offset, never adjacent (merged) */
  holes: { off: number; size: number }[];
  dedicated: boolean;
}

export const ALIGN = 256;

export class Arena {
  private chunks: Chunk[] = [];
  private live = new Map<number, { chunk: Chunk; off: number; size: number }>();
  private used = 0;

  /** chunkBytes: size of the shared chunks; larger requests get a chunk of their own. */
  constructor(
    private src: ChunkSource,
    readonly chunkBytes: number,
  ) {}

  /** Bytes handed out (rounded to the alignment). */
  get allocated(): number {
    return this.used;
  }

  /** Bytes held from the GPU. */
  get reserved(): number {
    return this.chunks.reduce((s, c) => s + c.size, 0);
  }

  /** A device address of at least `bytes` bytes, ALIGN-aligned. */
  alloc(bytes: number): number {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    for (const c of this.chunks) {
      const at = take(c, size);
      if (at !== undefined) return this.hand(c, at, size);
    }
    const dedicated = size > this.chunkBytes;
    const chunkSize = dedicated ? size : this.chunkBytes;
    const c: Chunk = { base: this.src.malloc(chunkSize), size: chunkSize, holes: [{ off: 0, size: chunkSize }], dedicated };
    this.chunks.push(c);
    return this.hand(c, take(c, size)!, size);
  }

  free(ptr: number): void {
    const a = this.live.get(ptr);
    if (!a) return; // freeing twice is harmless
    this.live.delete(ptr);
    this.used -= a.size;
    const c = a.chunk;
    if (c.dedicated) {
      this.chunks.splice(this.chunks.indexOf(c), 1);
      this.src.free(c.base);
      return;
    }
    const holes = c.holes;
    let i = 0;
    while (i < holes.length && holes[i].off < a.off) i++;
    holes.splice(i, 0, { off: a.off, size: a.size });
    // merge with the next, then with the previous
    if (i + 1 < holes.length && holes[i].off + holes[i].size === holes[i + 1].off) {
      holes[i].size += holes[i + 1].size;
      holes.splice(i + 1, 1);
    }
    if (i > 0 && holes[i - 1].off + holes[i - 1].size === holes[i].off) {
      holes[i - 1].size += holes[i].size;
      holes.splice(i, 1);
    }
  }

  /** Gives every chunk back (the device is going away). */
  release(): void {
    for (const c of this.chunks) this.src.free(c.base);
    this.chunks = [];
    this.live.clear();
    this.used = 0;
  }

  private hand(c: Chunk, off: number, size: number): number {
    const ptr = c.base + off;
    this.live.set(ptr, { chunk: c, off, size });
    this.used += size;
    return ptr;
  }
}

/** First fit in a chunk's holes: the offset taken, or undefined. */
function take(c: Chunk, size: number): number | undefined {
  for (let i = 0; i < c.holes.length; i++) {
    const h = c.holes[i];
    if (h.size < size) continue;
    const off = h.off;
    h.off += size;
    h.size -= size;
    if (h.size === 0) c.holes.splice(i, 1);
    return off;
  }
  return undefined;
}

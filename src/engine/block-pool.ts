// One pool of KV blocks, on the device or on the host: reference counts, a free list and, on the
// device, the prefix cache. A block is in exactly one state:
//   free           refCount 0, no content key            (in `free`)
//   cached-unused  refCount 0, registered content key     (in `lru`: reusable on a hit, evictable)
//   owned          refCount = number of block-table entries holding it
// Which sequence holds which block is the block manager's business; this file only counts.

/** What a full, computed block holds, for the prefix cache (device) or carried through a swap (host). */
export interface BlockContent {
  /** Chained content key (block-hash.ts). */
  key: string;
  /** The block's tokens, compared on every hit: the key alone may collide. */
  tokens: readonly number[];
  /** Unique per registration (never reused): children name their parent by it. 0 on the host. */
  id: number;
  /** `id` of the registered block holding the previous blockSize tokens; 0 for a first block. */
  parentId: number;
}

export class BlockPool {
  readonly refCount: Int32Array;
  readonly content: (BlockContent | undefined)[];
  /** refCount 0 and no content. Used as a stack. */
  private readonly free: number[] = [];
  /** refCount 0 with registered content, least recently released first (Map keeps insertion order). */
  private readonly lru = new Map<number, true>();
  private readonly byKey = new Map<string, number>();
  private nextId = 1;

  /** `caching`: keep released blocks that have content in the prefix cache (the device pool does). */
  constructor(
    readonly numBlocks: number,
    readonly caching: boolean,
  ) {
    this.refCount = new Int32Array(numBlocks);
    this.content = new Array(numBlocks).fill(undefined);
    for (let b = numBlocks - 1; b >= 0; b--) this.free.push(b);
  }

  /** Blocks an allocation can take: free ones, then cached-unused ones by eviction. */
  get numAvailable(): number {
    return this.free.length + this.lru.size;
  }
  get numCached(): number {
    return this.lru.size;
  }
  get numFree(): number {
    return this.free.length;
  }
  get numOwned(): number {
    return this.numBlocks - this.numAvailable;
  }

  /** A block with refCount 1 and no content; evicts the least recently released cached block when none is free. */
  allocate(): number {
    let b = this.free.pop();
    if (b === undefined) {
      const lru = this.lru.keys().next();
      if (lru.done) throw new Error('BlockPool: out of blocks (the caller should have checked numAvailable)');
      b = lru.value;
      this.lru.delete(b);
      this.forget(b);
    }
    this.refCount[b] = 1;
    return b;
  }

  ref(b: number): void {
    if (this.refCount[b]++ === 0) {
      if (!this.lru.delete(b)) throw new Error(`BlockPool: block ${b} was free, not cached`);
    }
  }

  unref(b: number): void {
    if (this.refCount[b] <= 0) throw new Error(`BlockPool: block ${b} released more often than held`);
    if (--this.refCount[b] > 0) return;
    if (this.caching && this.content[b] !== undefined) {
      this.lru.set(b, true);
    } else {
      this.forget(b);
      this.free.push(b);
    }
  }

  lookup(key: string): number | undefined {
    return this.byKey.get(key);
  }

  /** Does block b hold exactly these tokens, after the block registered as parentId? */
  matches(b: number, tokens: ArrayLike<number>, parentId: number, start = 0): boolean {
    const c = this.content[b];
    if (c === undefined || c.parentId !== parentId) return false;
    for (let j = 0; j < c.tokens.length; j++) if (c.tokens[j] !== tokens[start + j]) return false;
    return true;
  }

  /** Gives an owned block its content (and, when caching, makes it findable by key). Returns its id. */
  register(b: number, key: string, tokens: readonly number[], parentId: number): number {
    if (this.refCount[b] === 0 || this.content[b] !== undefined) throw new Error(`BlockPool: cannot register block ${b}`);
    const id = this.caching ? this.nextId++ : 0;
    this.content[b] = { key, tokens, id, parentId };
    if (this.caching) {
      if (this.byKey.has(key)) throw new Error(`BlockPool: key ${key} already registered`);
      this.byKey.set(key, b);
    }
    return id;
  }

  /** Drops a cached-unused block's content and frees it (to make room for another block under its key). */
  evict(b: number): void {
    if (!this.lru.delete(b)) throw new Error(`BlockPool: block ${b} is not cached-unused`);
    this.forget(b);
    this.free.push(b);
  }

  private forget(b: number): void {
    const c = this.content[b];
    if (c === undefined) return;
    if (this.caching && this.byKey.get(c.key) === b) this.byKey.delete(c.key);
    this.content[b] = undefined;
  }

  /** Throws unless every block is in exactly one state and refCount matches `holders` (table entries per block). */
  check(holders: Int32Array, name: string): void {
    const fail = (msg: string) => {
      throw new Error(`${name} pool: ${msg}`);
    };
    const seen = new Uint8Array(this.numBlocks);
    for (const b of this.free) {
      if (seen[b]++) fail(`block ${b} twice in the free list`);
      if (this.content[b] !== undefined) fail(`free block ${b} has content`);
    }
    for (const b of this.lru.keys()) {
      if (seen[b]++) fail(`block ${b} both free and cached`);
      const c = this.content[b];
      if (c === undefined || this.byKey.get(c.key) !== b) fail(`cached block ${b} is not findable by its key`);
    }
    for (let b = 0; b < this.numBlocks; b++) {
      if (this.refCount[b] !== holders[b]) fail(`block ${b} has refCount ${this.refCount[b]} but ${holders[b]} table entries`);
      if ((this.refCount[b] > 0) === (seen[b] === 1)) fail(`block ${b} is ${seen[b] ? 'listed as unused but owned' : 'neither owned nor listed'}`);
    }
    for (const [key, b] of this.byKey) if (this.content[b]?.key !== key) fail(`key ${key} points at block ${b}, which holds something else`);
  }
}

// The paged KV cache's bookkeeping: which blocks each sequence's tokens live in. numBlocks device
// blocks of blockSize tokens, shared by reference count (forked siblings, prefix-cache hits),
// copied on write when a sibling appends into a shared partial block, swapped to a host pool and
// back. Nothing here touches memory: the methods return the (src, dst) block pairs for the
// engine to copy, and block-pool.ts keeps the counts.
//
// Automatic prefix caching (prefix-cache.ts): once every token of a full block is computed
// (markComputed), the block is registered under its chained content key; when released it stays
// cached-unused, findable by a later request with the same prefix, until an allocation evicts it
// (LRU; a sequence releases its blocks last-first, so its tail goes before its head).

import { type BlockHashFn, hashBlock } from './block-hash.ts';
import { BlockPool } from './block-pool.ts';
import { PrefixCache } from './prefix-cache.ts';
import { Sequence, type SequenceGroup } from './sequence.ts';

/** One sequence, several, or a request's live ones. */
export type Seqs = Sequence | readonly Sequence[] | SequenceGroup;
const list = (s: Seqs): readonly Sequence[] => (s instanceof Sequence ? [s] : 'liveSeqs' in s ? s.liveSeqs : s);

export interface BlockManagerConfig {
  numBlocks: number;
  /** Tokens per block (default 16). */
  blockSize?: number;
  /** Host blocks for swapped-out sequences (default 0: no swapping). */
  numHostBlocks?: number;
  /** Fraction of device blocks that admitting new work must leave free for running sequences to grow into (default 0.01). */
  watermark?: number;
  enablePrefixCaching?: boolean;
  /** Content key function (default: 64-bit FNV-1a + Murmur3); tests pass a colliding one. */
  hashBlock?: BlockHashFn;
}

/** ok: fits now; later: fits once others release blocks; never: more than the cache can hold. */
export type AllocStatus = 'ok' | 'later' | 'never';

/** A block copy for the engine: device to device (copy-on-write), device to host (swap out), host to device (swap in). */
export type BlockPair = [src: number, dst: number];

export interface BlockUsage {
  numBlocks: number;
  blockSize: number;
  /** Held by at least one sequence. */
  usedBlocks: number;
  /** Held by none but kept for prefix-cache hits (evicted when needed). */
  cachedBlocks: number;
  freeBlocks: number;
  numHostBlocks: number;
  usedHostBlocks: number;
  /** Token slots in used device blocks that hold no token (each block's unfilled tail). */
  wastedSlots: number;
  /** wastedSlots / (usedBlocks * blockSize), 0 when nothing is used. */
  wasteFraction: number;
}

export class BlockManager {
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly numHostBlocks: number;
  readonly watermarkBlocks: number;
  readonly enablePrefixCaching: boolean;
  /** Prompt tokens looked up in the prefix cache by allocate(), and those found. */
  prefixQueriedTokens = 0;
  prefixHitTokens = 0;
  private readonly device: BlockPool;
  private readonly host: BlockPool;
  private readonly prefix: PrefixCache;
  /** Sequences holding blocks, and in which pool. */
  private readonly owners = new Map<Sequence, 'device' | 'host'>();

  constructor(config: BlockManagerConfig) {
    this.numBlocks = config.numBlocks;
    this.blockSize = config.blockSize ?? 16;
    this.numHostBlocks = config.numHostBlocks ?? 0;
    this.watermarkBlocks = Math.floor((config.watermark ?? 0.01) * this.numBlocks);
    this.enablePrefixCaching = config.enablePrefixCaching ?? true;
    if (!Number.isInteger(this.numBlocks) || this.numBlocks < 1) throw new Error(`numBlocks must be a positive integer, got ${this.numBlocks}`);
    if (!Number.isInteger(this.blockSize) || this.blockSize < 1) throw new Error(`blockSize must be a positive integer, got ${this.blockSize}`);
    this.device = new BlockPool(this.numBlocks, this.enablePrefixCaching);
    this.host = new BlockPool(this.numHostBlocks, false);
    this.prefix = new PrefixCache(this.device, this.blockSize, config.hashBlock ?? hashBlock, this.enablePrefixCaching);
  }

  /** Blocks needed to hold numTokens tokens. */
  blocksFor(numTokens: number): number {
    return Math.ceil(numTokens / this.blockSize);
  }

  // ---- admission --------------------------------------------------------------------------

  /** Can these waiting sequences (a request's live ones) get blocks for all their tokens, leaving the watermark free? */
  canAllocate(seqs: Seqs): AllocStatus {
    let total = 0;
    let fresh = 0;
    const revived = new Set<number>(); // cached-unused hits: they leave the available count too
    for (const seq of list(seqs)) {
      const hits = this.prefix.match(seq);
      total += this.blocksFor(seq.numTokens);
      fresh += this.blocksFor(seq.numTokens) - hits.length;
      for (const b of hits) if (this.device.refCount[b] === 0) revived.add(b);
    }
    if (total > this.numBlocks - this.watermarkBlocks) return 'never';
    return this.device.numAvailable - fresh - revived.size >= this.watermarkBlocks ? 'ok' : 'later';
  }

  /** Leading tokens of seq that allocate() would find in the prefix cache now. */
  numPrefixHitTokens(seq: Sequence): number {
    return this.prefix.match(seq).length * this.blockSize;
  }

  /** Gives a waiting sequence blocks for all its tokens, reusing cached full blocks of its prefix. */
  allocate(seq: Sequence): void {
    if (this.owners.has(seq)) throw new Error(`sequence ${seq.seqId} already holds blocks`);
    const hits = this.prefix.match(seq);
    const need = this.blocksFor(seq.numTokens);
    const take = need - hits.length + hits.filter((b) => this.device.refCount[b] === 0).length;
    if (take > this.device.numAvailable) throw new Error(`allocate: sequence ${seq.seqId} needs ${take} blocks, ${this.device.numAvailable} available`);
    for (const b of hits) this.device.ref(b); // before allocating: hits must not be evicted
    const table = hits.slice();
    while (table.length < need) table.push(this.device.allocate());
    seq.blockTable = table;
    seq.numCachedTokens = hits.length * this.blockSize;
    this.owners.set(seq, 'device');
    this.prefixQueriedTokens += seq.numTokens;
    this.prefixHitTokens += seq.numCachedTokens;
  }

  // ---- decoding ---------------------------------------------------------------------------

  /**
   * Is there room for each of these running sequences to write its last token? Counts exactly
   * what appendSlot will take: a new block where the last one is full, a copy where it is shared
   * (except for the last writer of a block no one else holds, which writes in place).
   */
  canAppendSlots(seqs: Seqs): boolean {
    return this.appendNeed(list(seqs), this.device) <= this.device.numAvailable;
  }

  canAppendSlot(seq: Sequence): boolean {
    return this.canAppendSlots(seq);
  }

  private appendNeed(seqs: readonly Sequence[], pool: BlockPool): number {
    let need = 0;
    const writers = new Map<number, number>();
    for (const seq of seqs) {
      const idx = Math.floor((seq.numTokens - 1) / this.blockSize);
      if (idx >= seq.blockTable.length) need++;
      else writers.set(seq.blockTable[idx], (writers.get(seq.blockTable[idx]) ?? 0) + 1);
    }
    for (const [b, w] of writers) if (pool.refCount[b] > 1) need += pool.refCount[b] > w ? w : w - 1;
    return need;
  }

  /**
   * Makes seq's last token writable: a new block when the table is one short, a private copy
   * when the block it falls in is shared. Returns the copy-on-write pair (src, dst) or null.
   */
  appendSlot(seq: Sequence): BlockPair | null {
    if (this.owners.get(seq) !== 'device') throw new Error(`appendSlot: sequence ${seq.seqId} holds no device blocks`);
    const pos = seq.numTokens - 1;
    if (pos < seq.numCachedTokens) throw new Error(`appendSlot: sequence ${seq.seqId} has no uncomputed token`);
    const idx = Math.floor(pos / this.blockSize);
    const table = seq.blockTable;
    if (idx > table.length) throw new Error(`appendSlot: sequence ${seq.seqId} is ${idx - table.length + 1} blocks short`);
    if (idx === table.length) {
      table.push(this.device.allocate());
      return null;
    }
    const src = table[idx];
    if (this.device.refCount[src] === 1) return null;
    const dst = this.device.allocate();
    this.device.unref(src);
    table[idx] = dst;
    return [src, dst];
  }

  /** The model computed seq's next numNewTokens tokens; the blocks they fill enter the prefix cache. */
  markComputed(seq: Sequence, numNewTokens: number): void {
    const before = seq.numCachedTokens;
    const after = before + numNewTokens;
    if (after > seq.numTokens || after > seq.blockTable.length * this.blockSize) throw new Error(`markComputed: sequence ${seq.seqId} has no room for ${numNewTokens} more computed tokens`);
    seq.numCachedTokens = after;
    this.prefix.commit(seq, before, after);
  }

  /** child (a new sibling of parent, same tokens) shares all of parent's blocks. */
  fork(parent: Sequence, child: Sequence): void {
    if (this.owners.get(parent) !== 'device') throw new Error(`fork: sequence ${parent.seqId} holds no device blocks`);
    if (this.owners.has(child)) throw new Error(`fork: sequence ${child.seqId} already holds blocks`);
    for (const b of parent.blockTable) this.device.ref(b);
    child.blockTable = parent.blockTable.slice();
    child.numCachedTokens = parent.numCachedTokens;
    this.owners.set(child, 'device');
    this.prefix.fork(parent, child);
  }

  /** Releases seq's blocks (device or host), last block first so the LRU evicts its tail first. */
  free(seq: Sequence): void {
    const where = this.owners.get(seq);
    if (where === undefined) return;
    const pool = where === 'device' ? this.device : this.host;
    for (let i = seq.blockTable.length - 1; i >= 0; i--) pool.unref(seq.blockTable[i]);
    seq.blockTable = [];
    seq.numCachedTokens = 0;
    this.owners.delete(seq);
  }

  // ---- swapping ---------------------------------------------------------------------------

  canSwapOut(seqs: Seqs): boolean {
    return new Set(list(seqs).flatMap((s) => s.blockTable)).size <= this.host.numAvailable;
  }

  /** Moves these sequences' blocks to the host pool (sharing kept). Returns (device, host) pairs to copy first thing next step. */
  swapOut(seqs: Seqs): BlockPair[] {
    if (!this.canSwapOut(seqs)) throw new Error('swapOut: not enough host blocks');
    const toHost = new Map<number, number>();
    const pairs: BlockPair[] = [];
    for (const seq of list(seqs)) {
      if (this.owners.get(seq) !== 'device') throw new Error(`swapOut: sequence ${seq.seqId} holds no device blocks`);
      const old = seq.blockTable;
      seq.blockTable = old.map((d) => {
        let h = toHost.get(d);
        if (h !== undefined) {
          this.host.ref(h);
          return h;
        }
        h = this.host.allocate();
        toHost.set(d, h);
        pairs.push([d, h]);
        const c = this.device.content[d];
        if (c) this.host.register(h, c.key, c.tokens, 0); // so that swap-in can find it cached again
        return h;
      });
      for (let i = old.length - 1; i >= 0; i--) this.device.unref(old[i]);
      this.owners.set(seq, 'host');
    }
    return pairs;
  }

  /** Can these swapped sequences come back, with room for each decoding one to write its next token? */
  canSwapIn(seqs: Seqs): AllocStatus {
    const ids = new Map<number, number | undefined>(); // host block -> id of the cached device block it would reuse
    let total = 0;
    let fresh = 0;
    const revived = new Set<number>();
    for (const seq of list(seqs)) {
      seq.blockTable.forEach((h, i) => {
        if (ids.has(h)) return;
        total++;
        const d = this.prefix.find(this.host.content[h], i === 0 ? 0 : ids.get(seq.blockTable[i - 1]));
        ids.set(h, d === undefined ? undefined : this.device.content[d]!.id);
        if (d === undefined) fresh++;
        else if (this.device.refCount[d] === 0) revived.add(d);
      });
    }
    const decoding = list(seqs).filter((s) => s.numTokens - s.numCachedTokens === 1);
    const grow = this.appendNeed(decoding, this.host);
    if (total + grow > this.numBlocks - this.watermarkBlocks) return 'never';
    return this.device.numAvailable - fresh - revived.size - grow >= this.watermarkBlocks ? 'ok' : 'later';
  }

  /** Brings swapped sequences back to the device. Returns (host, device) pairs to copy; blocks still cached on the device are reused, not copied. */
  swapIn(seqs: Seqs): BlockPair[] {
    const toDevice = new Map<number, number>();
    const pairs: BlockPair[] = [];
    for (const seq of list(seqs)) {
      if (this.owners.get(seq) !== 'host') throw new Error(`swapIn: sequence ${seq.seqId} is not swapped out`);
      const old = seq.blockTable;
      const table: number[] = [];
      old.forEach((h, i) => {
        let d = toDevice.get(h);
        if (d !== undefined) {
          this.device.ref(d);
        } else {
          const parentId = this.prefix.parentId(table, i);
          d = this.prefix.find(this.host.content[h], parentId);
          if (d !== undefined) {
            this.device.ref(d);
          } else {
            d = this.device.allocate();
            pairs.push([h, d]);
            const c = this.host.content[h];
            if (c && parentId !== undefined) this.prefix.register(d, c.key, c.tokens, parentId);
          }
          toDevice.set(h, d);
        }
        table.push(d);
      });
      seq.blockTable = table;
      for (let i = old.length - 1; i >= 0; i--) this.host.unref(old[i]);
      this.owners.set(seq, 'device');
    }
    return pairs;
  }

  // ---- reporting --------------------------------------------------------------------------

  usage(): BlockUsage {
    const bs = this.blockSize;
    const fill = new Map<number, number>();
    for (const [seq, where] of this.owners) {
      if (where !== 'device') continue;
      seq.blockTable.forEach((b, i) => fill.set(b, Math.max(fill.get(b) ?? 0, Math.min(bs, Math.max(0, seq.numTokens - i * bs)))));
    }
    let wastedSlots = 0;
    for (const f of fill.values()) wastedSlots += bs - f;
    const usedBlocks = this.device.numOwned;
    return {
      numBlocks: this.numBlocks,
      blockSize: bs,
      usedBlocks,
      cachedBlocks: this.device.numCached,
      freeBlocks: this.device.numFree,
      numHostBlocks: this.numHostBlocks,
      usedHostBlocks: this.host.numOwned,
      wastedSlots,
      wasteFraction: usedBlocks === 0 ? 0 : wastedSlots / (usedBlocks * bs),
    };
  }

  /** Sequences holding blocks (device or host). */
  get numOwners(): number {
    return this.owners.size;
  }

  /**
   * Throws unless the bookkeeping is consistent: every block free, cached-unused or owned with
   * refCount = the table entries holding it; every table no longer than its tokens need and
   * long enough for its computed ones; every cached block in a table holding that table's tokens.
   */
  check(): void {
    const bs = this.blockSize;
    const onDevice = new Int32Array(this.numBlocks);
    const onHost = new Int32Array(this.numHostBlocks);
    for (const [seq, where] of this.owners) {
      const t = seq.blockTable;
      const name = `sequence ${seq.seqId}`;
      if (seq.isFinished) throw new Error(`${name} is finished but holds blocks`);
      if (t.length > this.blocksFor(seq.numTokens)) throw new Error(`${name} holds ${t.length} blocks for ${seq.numTokens} tokens`);
      if (t.length * bs < seq.numCachedTokens) throw new Error(`${name} has ${seq.numCachedTokens} computed tokens in ${t.length} blocks`);
      const holders = where === 'device' ? onDevice : onHost;
      const pool = where === 'device' ? this.device : this.host;
      t.forEach((b, i) => {
        holders[b]++;
        const c = pool.content[b];
        if (c === undefined) return;
        if ((i + 1) * bs > seq.numCachedTokens) throw new Error(`${name}: cached block ${b} at ${i} is past its ${seq.numCachedTokens} computed tokens`);
        if (c.tokens.some((tok, j) => tok !== seq.tokenIds[i * bs + j])) throw new Error(`${name}: cached block ${b} at ${i} holds other tokens`);
        if (where === 'device' && c.parentId !== this.prefix.parentId(t, i)) throw new Error(`${name}: cached block ${b} at ${i} follows another parent`);
      });
    }
    this.device.check(onDevice, 'device');
    this.host.check(onHost, 'host');
  }
}

// Automatic prefix caching over the device block pool. A full block whose tokens are all
// computed is registered under its chained content key (block-hash.ts); a later sequence whose
// leading tokens are the same finds it and skips computing them. A hit is trusted only after
// comparing the block's tokens and its parent's registration id (unique, never reused), so a
// key collision costs a miss, never wrong K/V. Registered blocks that no one holds stay
// cached-unused in the pool until an allocation evicts them.

import type { BlockHashFn } from './block-hash.ts';
import type { BlockContent, BlockPool } from './block-pool.ts';
import type { Sequence } from './sequence.ts';

export class PrefixCache {
  /** Per sequence, the content keys of its leading full blocks, computed as needed. */
  private readonly keys = new WeakMap<Sequence, string[]>();

  constructor(
    private readonly pool: BlockPool,
    private readonly blockSize: number,
    private readonly hashFn: BlockHashFn,
    readonly enabled: boolean,
  ) {}

  /**
   * Device blocks holding seq's leading full blocks, as far as the cache has them. Never the
   * block holding the last token: that token must be computed to give the logits to sample from.
   */
  match(seq: Sequence): number[] {
    const out: number[] = [];
    if (!this.enabled || seq.noPrefixCache) return out;
    const n = Math.floor((seq.numTokens - 1) / this.blockSize);
    const keys = this.keysOf(seq, n);
    let parentId = 0;
    for (let i = 0; i < n; i++) {
      const b = this.pool.lookup(keys[i]);
      if (b === undefined || !this.pool.matches(b, seq.tokenIds, parentId, i * this.blockSize)) break;
      out.push(b);
      parentId = this.pool.content[b]!.id;
    }
    return out;
  }

  /**
   * seq's tokens [before, after) were just computed: registers the blocks they fill. Where an
   * equal block is registered already (two requests with one prefix admitted together computed
   * it twice), seq switches to that one and its own copy is freed.
   */
  commit(seq: Sequence, before: number, after: number): void {
    if (!this.enabled) return;
    const bs = this.blockSize;
    const keys = this.keysOf(seq, Math.floor(after / bs));
    for (let i = Math.floor(before / bs); i < Math.floor(after / bs); i++) {
      const b = seq.blockTable[i];
      if (this.pool.content[b] !== undefined) continue;
      const parentId = this.parentId(seq.blockTable, i);
      if (parentId === undefined) continue; // parent unregistered (it lost a key collision): the chain stops here
      const same = this.register(b, keys[i], seq.tokenIds.slice(i * bs, (i + 1) * bs), parentId);
      if (same !== undefined && this.pool.refCount[b] === 1) {
        this.pool.ref(same);
        this.pool.unref(b);
        seq.blockTable[i] = same;
      }
    }
  }

  /** Registration id of the block before index i of a device block table (0 before the first; undefined if unregistered). */
  parentId(table: readonly number[], i: number): number | undefined {
    return i === 0 ? 0 : this.pool.content[table[i - 1]]?.id;
  }

  /**
   * Registers block b under key unless an equal block is registered already (returned then).
   * A different block under the same key is dropped if no one holds it (a stale child of an
   * evicted parent, or a collision); if someone does, b stays unregistered.
   */
  register(b: number, key: string, tokens: readonly number[], parentId: number): number | undefined {
    if (!this.enabled) return undefined;
    const other = this.pool.lookup(key);
    if (other !== undefined) {
      if (this.pool.matches(other, tokens, parentId)) return other;
      if (this.pool.refCount[other] > 0) return undefined;
      this.pool.evict(other);
    }
    this.pool.register(b, key, tokens, parentId);
    return undefined;
  }

  /** The registered block holding this content after the block registered as parentId, if any. */
  find(content: BlockContent | undefined, parentId: number | undefined): number | undefined {
    if (!this.enabled || content === undefined || parentId === undefined) return undefined;
    const b = this.pool.lookup(content.key);
    return b !== undefined && this.pool.matches(b, content.tokens, parentId) ? b : undefined;
  }

  /** A forked child has its parent's tokens, hence its keys. */
  fork(parent: Sequence, child: Sequence): void {
    const keys = this.keys.get(parent);
    if (keys) this.keys.set(child, keys.slice());
  }

  private keysOf(seq: Sequence, n: number): string[] {
    let keys = this.keys.get(seq);
    if (keys === undefined) this.keys.set(seq, (keys = []));
    const bs = this.blockSize;
    for (let i = keys.length; i < n; i++) keys.push(this.hashFn(i === 0 ? null : keys[i - 1], seq.tokenIds.slice(i * bs, (i + 1) * bs)));
    return keys;
  }
}

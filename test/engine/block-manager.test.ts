// The block manager alone, with hand-made sequences: allocation, prefix caching, copy-on-write,
// watermark, swapping and the accounting check.

import { describe, expect, it } from 'vitest';
import { BlockManager, type BlockManagerConfig } from '../../src/engine/block-manager.ts';
import { hashBlock } from '../../src/engine/block-hash.ts';
import { Sequence } from '../../src/engine/sequence.ts';

const bm = (c: Partial<BlockManagerConfig> = {}) => new BlockManager({ numBlocks: 16, blockSize: 4, watermark: 0, ...c });
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

/** Allocates seq and marks all its tokens computed, as a finished prefill would. */
function prefill(m: BlockManager, seq: Sequence): void {
  m.allocate(seq);
  m.markComputed(seq, seq.numTokens - seq.numCachedTokens);
  m.check();
}

describe('BlockManager', () => {
  it('gives a prompt ceil(tokens / blockSize) blocks and takes them back', () => {
    const m = bm();
    const s = new Sequence(range(0, 9));
    expect(m.canAllocate(s)).toBe('ok');
    m.allocate(s);
    expect(s.blockTable).toHaveLength(3);
    expect(new Set(s.blockTable).size).toBe(3);
    expect(s.numCachedTokens).toBe(0);
    expect(m.usage()).toMatchObject({ usedBlocks: 3, freeBlocks: 13, cachedBlocks: 0, wastedSlots: 3 });
    m.check();
    m.free(s);
    expect(s.blockTable).toEqual([]);
    expect(m.usage()).toMatchObject({ usedBlocks: 0, freeBlocks: 16 });
    m.check();
  });

  it('a second prompt with the same prefix reuses the first one\'s full blocks', () => {
    const m = bm();
    const a = new Sequence(range(0, 10)); // blocks [0-3] [4-7] [8-9]
    prefill(m, a);
    const b = new Sequence([...range(0, 8), 50, 51, 52]);
    expect(m.numPrefixHitTokens(b)).toBe(8);
    m.allocate(b);
    expect(b.numCachedTokens).toBe(8);
    expect(b.blockTable.slice(0, 2)).toEqual(a.blockTable.slice(0, 2));
    expect(b.blockTable[2]).not.toBe(a.blockTable[2]); // a's partial block is a's alone
    expect(m.usage().usedBlocks).toBe(4);
    expect([m.prefixQueriedTokens, m.prefixHitTokens]).toEqual([10 + 11, 8]);
    m.check();
  });

  it('never reports the whole prompt cached: the last token is computed for its logits', () => {
    const m = bm();
    prefill(m, new Sequence(range(0, 8)));
    const again = new Sequence(range(0, 8));
    m.allocate(again);
    expect(again.numCachedTokens).toBe(4);
    const longer = new Sequence(range(0, 9));
    m.allocate(longer);
    expect(longer.numCachedTokens).toBe(8);
    m.check();
  });

  it('a different first block means no hit even when later blocks match', () => {
    const m = bm();
    prefill(m, new Sequence(range(0, 12)));
    const s = new Sequence([99, ...range(1, 11)]);
    m.allocate(s);
    expect(s.numCachedTokens).toBe(0);
  });

  it('keeps released full blocks cached and reuses them; partial blocks go back to the free list', () => {
    const m = bm();
    const a = new Sequence(range(0, 10));
    prefill(m, a);
    const kept = a.blockTable.slice(0, 2);
    m.free(a);
    expect(m.usage()).toMatchObject({ usedBlocks: 0, cachedBlocks: 2, freeBlocks: 14 });
    m.check();
    const b = new Sequence(range(0, 9));
    m.allocate(b);
    expect(b.blockTable.slice(0, 2)).toEqual(kept);
    expect(m.usage()).toMatchObject({ usedBlocks: 3, cachedBlocks: 0 });
    m.check();
  });

  it('evicts cached blocks least recently released first, a sequence\'s tail before its head', () => {
    const m = bm({ numBlocks: 6 });
    const a = new Sequence(range(0, 12)); // 3 full blocks
    prefill(m, a);
    m.free(a);
    const filler = new Sequence(range(100, 16)); // needs 4: 3 free, then evicts 1 cached
    expect(m.canAllocate(filler)).toBe('ok');
    m.allocate(filler);
    expect(m.usage()).toMatchObject({ usedBlocks: 4, cachedBlocks: 2, freeBlocks: 0 });
    m.check();
    const b = new Sequence(range(0, 13));
    expect(m.numPrefixHitTokens(b)).toBe(8); // a's third block went first
  });

  it('counts cached-unused hits against free space when admitting', () => {
    const m = bm({ numBlocks: 4 });
    const a = new Sequence(range(0, 12));
    prefill(m, a);
    m.free(a); // 3 cached, 1 free
    const b = new Sequence(range(0, 13)); // 4 blocks: 3 hits revived + 1 new
    expect(m.canAllocate(b)).toBe('ok');
    const c = new Sequence(range(0, 17)); // 5 blocks
    expect(m.canAllocate(c)).toBe('never');
  });

  it('keeps a watermark of free blocks when admitting new sequences', () => {
    const m = bm({ numBlocks: 100, watermark: 0.1 }); // 10 blocks kept
    expect(m.watermarkBlocks).toBe(10);
    expect(m.canAllocate(new Sequence(range(0, 4 * 91)))).toBe('never');
    expect(m.canAllocate(new Sequence(range(0, 4 * 90)))).toBe('ok');
    m.allocate(new Sequence(range(1000, 4 * 5)));
    expect(m.canAllocate(new Sequence(range(0, 4 * 86)))).toBe('later');
    expect(m.canAllocate(new Sequence(range(0, 4 * 85)))).toBe('ok');
  });

  it('adds a block when the last one is full', () => {
    const m = bm();
    const s = new Sequence(range(0, 4));
    prefill(m, s);
    s.appendToken(5);
    expect(m.canAppendSlots(s)).toBe(true);
    expect(m.appendSlot(s)).toBeNull();
    expect(s.blockTable).toHaveLength(2);
    m.check();
    for (let t = 0; t < 8; t++) s.appendToken(t); // tokens appended without slots: a bug, loudly
    expect(() => m.appendSlot(s)).toThrow(/short/);
  });

  it('fork shares every block; appending copies the shared partial block, the last writer writes in place', () => {
    const m = bm();
    const p = new Sequence(range(0, 6)); // [0-3] full, [4-5] partial
    prefill(m, p);
    const c1 = new Sequence(p.tokenIds);
    const c2 = new Sequence(p.tokenIds);
    m.fork(p, c1);
    m.fork(p, c2);
    expect(c1.blockTable).toEqual(p.blockTable);
    expect(c1.numCachedTokens).toBe(6);
    m.check();
    const [full, partial] = p.blockTable;
    for (const [s, t] of [[p, 1], [c1, 2], [c2, 3]] as const) s.appendToken(t);
    expect(m.usage().freeBlocks).toBe(14);
    // three writers of one block no one else holds: two copies
    expect(m.canAppendSlots([p, c1, c2])).toBe(true);
    const free2 = bm({ numBlocks: 3 });
    const q = new Sequence(range(0, 6));
    prefill(free2, q);
    const q1 = new Sequence(q.tokenIds);
    free2.fork(q, q1);
    const q2 = new Sequence(q.tokenIds);
    free2.fork(q, q2);
    for (const s of [q, q1, q2]) s.appendToken(9);
    expect(free2.canAppendSlots([q, q1, q2])).toBe(false); // two copies, one free block
    expect(free2.canAppendSlots([q2])).toBe(true); // one copy
    free2.appendSlot(q2);
    expect(free2.canAppendSlots([q])).toBe(false); // q1 holds the block too: q must copy, no block left
    const pairs = [m.appendSlot(p), m.appendSlot(c1), m.appendSlot(c2)];
    expect(pairs[0]).toEqual([partial, p.blockTable[1]]);
    expect(pairs[1]).toEqual([partial, c1.blockTable[1]]);
    expect(pairs[2]).toBeNull();
    expect(c2.blockTable[1]).toBe(partial);
    expect([p.blockTable[0], c1.blockTable[0], c2.blockTable[0]]).toEqual([full, full, full]);
    expect(new Set([p.blockTable[1], c1.blockTable[1], c2.blockTable[1]]).size).toBe(3);
    m.check();
  });

  it('registers a block computed twice only once and moves the second owner onto it', () => {
    const m = bm();
    const a = new Sequence(range(0, 9));
    const b = new Sequence(range(0, 9));
    m.allocate(a);
    m.allocate(b); // nothing cached yet: both compute the same two full blocks
    expect(m.usage().usedBlocks).toBe(6);
    m.markComputed(a, 9);
    m.markComputed(b, 9);
    expect(b.blockTable.slice(0, 2)).toEqual(a.blockTable.slice(0, 2));
    expect(m.usage().usedBlocks).toBe(4);
    m.check();
  });

  it('stays correct when every key collides: a hit needs equal tokens after an equal parent', () => {
    const m = bm({ hashBlock: () => 'same' });
    const a = new Sequence(range(0, 9));
    prefill(m, a);
    const b = new Sequence([...range(50, 4), ...range(4, 5)]); // second block equal to a's, first not
    m.allocate(b);
    expect(b.numCachedTokens).toBe(0);
    m.markComputed(b, 9); // the key is a's (held): b's blocks stay unregistered
    m.check();
    m.free(a);
    m.free(b);
    expect(m.usage().cachedBlocks).toBe(1);
    const c = new Sequence([...range(60, 4), 1]);
    prefill(m, c); // the key's holder is a stale, unheld block: c's first block takes the key
    m.free(c);
    expect(m.numPrefixHitTokens(new Sequence(range(0, 9)))).toBe(0);
    expect(m.numPrefixHitTokens(new Sequence([...range(60, 4), 2]))).toBe(4);
    m.check();
  });

  it('swaps a forked pair out and back, keeping sharing and reusing blocks still cached on the device', () => {
    const m = bm({ numHostBlocks: 8 });
    const p = new Sequence(range(0, 6));
    prefill(m, p);
    const c = new Sequence(p.tokenIds);
    m.fork(p, c);
    const [full, partial] = p.blockTable;
    expect(m.canSwapOut([p, c])).toBe(true);
    const out = m.swapOut([p, c]);
    expect(out.map(([d]) => d).sort()).toEqual([full, partial].sort());
    expect(c.blockTable).toEqual(p.blockTable);
    expect(m.usage()).toMatchObject({ usedBlocks: 0, cachedBlocks: 1, usedHostBlocks: 2 });
    m.check();
    expect(m.canSwapIn([p, c])).toBe('ok');
    const back = m.swapIn([p, c]);
    expect(back).toHaveLength(1); // the full block was still cached: no copy
    expect(p.blockTable[0]).toBe(full);
    expect(c.blockTable).toEqual(p.blockTable);
    expect(back[0][1]).toBe(p.blockTable[1]);
    expect(m.usage()).toMatchObject({ usedBlocks: 2, usedHostBlocks: 0 });
    m.check();
  });

  it('refuses to swap out more blocks than the host pool holds, and to swap in what can never fit', () => {
    const m = bm({ numBlocks: 4, numHostBlocks: 2 });
    const s = new Sequence(range(0, 12));
    prefill(m, s);
    expect(m.canSwapOut([s])).toBe(false);
    const big = bm({ numBlocks: 3, numHostBlocks: 4 });
    const t = new Sequence(range(0, 12));
    prefill(big, t);
    t.appendToken(1);
    big.swapOut([t]);
    expect(big.canSwapIn([t])).toBe('never'); // 3 blocks + 1 to grow into > 3
  });

  it('reports waste: allocated slots holding no token', () => {
    const m = bm();
    const a = new Sequence(range(0, 5)); // 2 blocks, 3 empty slots
    const b = new Sequence(range(100, 8)); // 2 full blocks
    m.allocate(a);
    m.allocate(b);
    expect(m.usage()).toMatchObject({ usedBlocks: 4, wastedSlots: 3, wasteFraction: 3 / 16 });
  });

  it('check() catches a block held by a table that did not take a reference', () => {
    const m = bm();
    const a = new Sequence(range(0, 4));
    m.allocate(a);
    const b = new Sequence(range(0, 4));
    m.allocate(b);
    b.blockTable[0] = a.blockTable[0];
    expect(() => m.check()).toThrow(/refCount/);
  });
});

describe('hashBlock', () => {
  it('chains over the parent and separates nearby inputs', () => {
    const root = hashBlock(null, [1, 2, 3, 4]);
    expect(root).toMatch(/^[0-9a-f]{16}$/);
    expect(hashBlock(null, [1, 2, 3, 4])).toBe(root);
    expect(hashBlock(root, [1, 2, 3, 4])).not.toBe(root);
    const keys = new Set<string>();
    for (let t = 0; t < 20_000; t++) keys.add(hashBlock(root, [t, 0, 0, 0]));
    for (let t = 0; t < 20_000; t++) keys.add(hashBlock(null, [t]));
    expect(keys.size).toBe(40_000);
  });
});

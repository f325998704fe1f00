// The tile loop shared by paged_attention_tiled.wgsl (decode's fallback) and
// prefill_attention.wgsl: NQ queries
// of one workgroup, all of one sequence and one kv head, attend to the keys at positions
// [lo, hi) of that sequence, read through its block table, with an online softmax. Included
// by those kernels; not a kernel of its own.
//
// The planner gives the overrides WG (threads), HS (head size), NQ (queries per workgroup), TK
// (keys per tile) and NACC = ceil(NQ * HS / WG). The includer declares params fields
// block_size, num_kv_heads, scale and tile_keys (= TK), and the binding block_tables; this
// file declares the type kv_pair (vec2f, or KV_F16: an f16 pair packed in a u32) and, through
// lib/kv_pool.wgsl, the cache bindings key_cache and value_cache (2 and 3) and, for a pool split
// into parts (KV_PARTS_2..4), key_cache_1.. and value_cache_1.. (bindings 10-15), which need
// the params field part_blocks (blocks of every part but the last). Before calling attend it
// fills q_sh with the queries and qpos_sh with their positions (a query sees keys at positions
// <= its own; -1 for a query slot it leaves unused).
// Afterwards acc holds the un-normalised output of (query o / HS, dim o % HS) for
// o = lid + i * WG, and m_sh, l_sh each query's running max and sum of exp(score - max).
//
// Per tile of TK keys, with a barrier between steps:
//   1. cache rows of the tile's keys from the block table       (TK threads)
//      (of a split pool: the part of the key's block, and the row in that part)
//   2. the K tile into workgroup memory, as f32                   (all threads, coalesced)
//   3. scores: one (query, key) dot product per thread and pass   (all threads)
//   4. each query's new running max, and the factor alpha that rescales what came before
//   5. probabilities exp(score - max) in place; the V tile over the K tile
//   6. running sums; acc = acc * alpha + P @ V                    (thread per output element)
// Tile rows are HS + 1 floats apart so that the threads of step 3, which read one key row
// each, hit different banks (a stride of HS, a multiple of 32, puts them all in one).
// Steps 4 and 6's sums are serial per query (TK terms, 8-16): with NQ threads busy they cost
// little next to the loads, and avoid a reduction tree per query.
// The shape is small on purpose (see tileShape in src/device/webgpu/attention.ts): the loop is
// latency-bound, and small workgroup memory keeps more workgroups resident (on an H200 decode
// went from 91 to 459 GB/s when TK fell from 64 to 16 and WG rose from 128 to 256).
// The loops over a tile's keys run to params.tile_keys, not to the constant TK: with constant
// bounds llvmpipe's LLVM unrolled step 6 fully (NACC x TK multiply-adds) and took ~10 s to
// compile one prefill variant; with a uniform bound it takes ~0.4 s and runs as fast.

#if KV_F16
alias kv_pair = u32;
#else
alias kv_pair = vec2f;
#endif
alias kv_elem = kv_pair;
#include "lib/kv_pool.wgsl"

override WG: u32 = 256;
override HS: u32 = 128;
override NQ: u32 = 4;
override TK: u32 = 16;
override NACC: u32 = 2;

const NONE = 0xffffffffu;
// score of a masked key; exp(NEG - max) is never used, masked keys get probability 0 outright
const NEG = -3.0e38;

var<workgroup> q_sh: array<f32, NQ * HS>;
var<workgroup> kv_sh: array<f32, TK * (HS + 1u)>;
var<workgroup> p_sh: array<f32, NQ * TK>;
var<workgroup> row_sh: array<u32, TK>;
var<workgroup> qpos_sh: array<i32, NQ>;
var<workgroup> m_sh: array<f32, NQ>;
var<workgroup> l_sh: array<f32, NQ>;
var<workgroup> alpha_sh: array<f32, NQ>;
var<private> acc: array<f32, NACC>;
#if KV_PARTS_2
var<workgroup> part_sh: array<u32, TK>;
#endif

fn unpack_pair(w: kv_pair) -> vec2f {
#if KV_F16
  return unpack2x16float(w);
#else
  return w;
#endif
}

// pair i (elements 2i, 2i + 1) of a part of the caches, counting over its [blocks, block_size,
// num_kv_heads, HS]
fn key_pair(part: u32, i: u32) -> vec2f { return unpack_pair(key_at(part, i)); }
fn value_pair(part: u32, i: u32) -> vec2f { return unpack_pair(value_at(part, i)); }

// The K (is_key) or V tile: row t of kv_sh is the key/value at row_sh[t] of the cache (of part
// part_sh[t] where the pool is split), or zeros
// past the range (so that a zero probability never meets a NaN from memory it should not read).
fn load_tile(lid: u32, is_key: bool) {
  let half = HS / 2u;
  let stride = HS + 1u;
  for (var u = lid; u < TK * half; u += WG) {
    let t = u / half;
    let j = u % half;
    let row = row_sh[t];
#if KV_PARTS_2
    let part = part_sh[t];
#else
    let part = 0u;
#endif
    var v = vec2f(0.0);
    if (row != NONE) {
      // a branch, not select(): select would load both caches
      if (is_key) { v = key_pair(part, row * half + j); } else { v = value_pair(part, row * half + j); }
    }
    kv_sh[t * stride + 2u * j] = v.x;
    kv_sh[t * stride + 2u * j + 1u] = v.y;
  }
}

// table: index of the sequence's first block-table entry. lo, hi must be workgroup-uniform.
fn attend(table: u32, kvh: u32, lo: u32, hi: u32, lid: u32) {
  let stride = HS + 1u;
  let tk = params.tile_keys;
  for (var i = 0u; i < NACC; i++) { acc[i] = 0.0; }
  for (var qi = lid; qi < NQ; qi += WG) {
    m_sh[qi] = NEG;
    l_sh[qi] = 0.0;
  }
  for (var t0 = lo; t0 < hi; t0 += TK) {
    // 1. cache rows: (slot * num_kv_heads + kvh), slot from the block table
    for (var t = lid; t < TK; t += WG) {
      let pos = t0 + t;
      var row = NONE;
      if (pos < hi) {
        let r = cache_row(table, pos, kvh);
        row = r.x;
#if KV_PARTS_2
        part_sh[t] = r.y;
#endif
      }
      row_sh[t] = row;
    }
    workgroupBarrier();
    // 2. K tile
    load_tile(lid, true);
    workgroupBarrier();
    // 3. scores, masked past hi and past each query's own position
    for (var u = lid; u < NQ * TK; u += WG) {
      let qi = u / TK;
      let t = u % TK;
      let pos = t0 + t;
      var s = NEG;
      if (pos < hi && i32(pos) <= qpos_sh[qi]) {
        var d = 0.0;
        for (var k = 0u; k < HS; k++) { d += q_sh[qi * HS + k] * kv_sh[t * stride + k]; }
        s = d * params.scale;
      }
      p_sh[u] = s;
    }
    workgroupBarrier();
    // 4. running max; alpha rescales the sums and outputs of earlier tiles (0 on the first
    //    tile with a key in range: exp(NEG - max) underflows; 1 while nothing is in range)
    for (var qi = lid; qi < NQ; qi += WG) {
      let m_old = m_sh[qi];
      var mx = m_old;
      for (var t = 0u; t < tk; t++) { mx = max(mx, p_sh[qi * TK + t]); }
      alpha_sh[qi] = exp(m_old - mx);
      m_sh[qi] = mx;
    }
    workgroupBarrier();
    // 5. probabilities, and the V tile (kv_sh is free: step 3 was the K tile's last reader)
    for (var u = lid; u < NQ * TK; u += WG) {
      let s = p_sh[u];
      p_sh[u] = select(exp(s - m_sh[u / TK]), 0.0, s == NEG);
    }
    load_tile(lid, false);
    workgroupBarrier();
    // 6. sums and outputs
    for (var qi = lid; qi < NQ; qi += WG) {
      var sum = 0.0;
      for (var t = 0u; t < tk; t++) { sum += p_sh[qi * TK + t]; }
      l_sh[qi] = l_sh[qi] * alpha_sh[qi] + sum;
    }
    for (var i = 0u; i < NACC; i++) {
      let o = lid + i * WG;
      if (o < NQ * HS) {
        let qi = o / HS;
        let d = o % HS;
        var a = acc[i] * alpha_sh[qi];
        for (var t = 0u; t < tk; t++) { a += p_sh[qi * TK + t] * kv_sh[t * stride + d]; }
        acc[i] = a;
      }
    }
    workgroupBarrier();
  }
  // m_sh and l_sh are read by other threads next, also when the range was empty
  workgroupBarrier();
}

// paged_attention: decode attention over the paged KV cache, one query token per sequence,
// laid out for memory bandwidth: at a large decode step the K/V reads are the largest term.
// q, out: [num_seqs, num_heads * HS] f32; key_cache, value_cache: [num_blocks, block_size,
// num_kv_heads, HS] f16 (KV_F16) | f32, whole or in parts (KV_PARTS_2..4, lib/kv_pool.wgsl);
// block_tables: [num_seqs, max_blocks] i32; context_lens: [num_seqs] i32.
//
// A workgroup takes NQ query heads of one kv head (GQA: each K/V row is read once for all of
// them) over one partition of a sequence's context, n <= PK keys. Grid: num_seqs *
// (num_heads / NQ) * partitions.
//   v1 (partitions == 1): the partition is the whole context and the workgroup writes out.
//   v2 (PARTITIONED): partition p covers positions [p * partition_size, (p + 1) *
//   partition_size); each writes its un-normalised output, max and sum to part_out / part_ml
//   and paged_attention_reduce.wgsl merges them. part_out: [num_seqs, num_heads, partitions,
//   HS] f32; part_ml: [num_seqs, num_heads, partitions, 2] f32. A partition past the context
//   writes nothing (the reduce kernel knows the context length).
//
// A row of K or V is read as HS / 8 chunks of 8 elements (16 bytes of f16): LPK = HS / 8 lanes
// per row, KG = WG / LPK rows side by side, KPL rows in flight per lane.
//   0. the partition's cache rows (and parts) from the block table into row_sh; each lane
//      keeps its 8 dims of the NQ queries in registers, scale folded in
//   1. QK, in rounds of TK = KG * KPL keys: a lane loads its chunk of KPL keys, then dots them
//      with its query dims; the LPK partial dots of a (key, head) meet in workgroup memory and
//      one thread sums them into score_sh. The partials are double-buffered: one barrier a round.
//   2. softmax over the whole partition, whose scores all sit in score_sh (so no rescaling
//      across tiles): each head's max and sum by a two-level reduction
//   3. PV: a lane owns 8 output dims of its key group's keys, KPL V chunks in flight, the
//      probabilities read from score_sh; no barrier until the end
//   4. each head's KG partial outputs are summed through workgroup memory and written
// (vs the tiled kernel, paged_attention_tiled.wgsl: 16-byte instead of 4-byte loads, KPL of
// them in flight per lane, 1 barrier per 64 keys instead of 5 per 16.)
// No subgroup operations, so CI's llvmpipe runs this very kernel. Out-of-range keys of a round
// (past n) load the partition's last row instead (real data: no NaN from memory it should not
// read) and are dropped, so that the loads need no branch.
// The planner passes every override (the consts below derive from them); it keeps
// partitions at most PK keys and picks NQ, KPL and PK so that the workgroup memory fits.

#include "lib/common.wgsl"

struct Params {
  num_seqs: u32,
  num_heads: u32,
  num_kv_heads: u32,
  block_size: u32,
  max_blocks: u32,
  partition_size: u32,
  partitions: u32,
  scale: f32,
#if KV_PARTS_2
  part_blocks: u32,
#endif
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(4) var<storage, read> block_tables: array<i32>;
@group(0) @binding(5) var<storage, read> context_lens: array<i32>;
#if PARTITIONED
@group(0) @binding(6) var<storage, read_write> part_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> part_ml: array<f32>;
#else
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
#endif

#if KV_F16
alias kv_elem = vec4u; // eight f16: one chunk
#else
alias kv_elem = vec4f; // four f32: half a chunk
#endif
#include "lib/kv_pool.wgsl"

override WG: u32 = 256;
override HS: u32 = 128;  // 8 x a power of two, HS / 8 <= WG
override NQ: u32 = 1;    // query heads per workgroup: a power of two, at most 8
override KPL: u32 = 4;   // keys in flight per lane
override PK: u32 = 1024; // most keys of a partition

const LPK: u32 = HS / 8u;          // lanes per key row
const KG: u32 = WG / LPK;          // key rows side by side
const TK: u32 = KG * KPL;          // keys per QK round
const KPAD: u32 = LPK + 1u;        // floats per (key, head) of partials: + 1 against bank conflicts
const RB: u32 = TK * NQ * KPAD;    // floats of one partials buffer
const TPH: u32 = WG / NQ;          // threads per head in the softmax reductions
// phase 1: two partials buffers; phase 2: WG floats; phase 4: 8 floats a thread
const SCRATCH: u32 = max(2u * RB, 8u * WG);
const PART_SHIFT: u32 = 30u;       // row_sh: part in the top bits (a part holds < 2^30 rows)
const ROW_MASK: u32 = (1u << PART_SHIFT) - 1u;

var<workgroup> score_sh: array<f32, NQ * PK>; // head h's score of key t at h * PK + t, then its probability
var<workgroup> row_sh: array<u32, PK>;        // cache row of key t (and part << PART_SHIFT)
var<workgroup> scratch: array<f32, SCRATCH>;
var<workgroup> ml_sh: array<f32, 2u * NQ>;     // each head's max and sum
var<workgroup> ctx_sh: u32;

// 8 consecutive elements of a K or V row
struct Chunk { lo: vec4f, hi: vec4f }

#if KV_F16
fn widen(w: vec4u) -> Chunk {
  return Chunk(vec4f(unpack2x16float(w.x), unpack2x16float(w.y)), vec4f(unpack2x16float(w.z), unpack2x16float(w.w)));
}
// chunk c of the row in row_sh's entry rp
fn key_chunk(rp: u32, c: u32) -> Chunk { return widen(key_at(rp >> PART_SHIFT, (rp & ROW_MASK) * LPK + c)); }
fn value_chunk(rp: u32, c: u32) -> Chunk { return widen(value_at(rp >> PART_SHIFT, (rp & ROW_MASK) * LPK + c)); }
#else
fn key_chunk(rp: u32, c: u32) -> Chunk {
  let i = 2u * ((rp & ROW_MASK) * LPK + c);
  return Chunk(key_at(rp >> PART_SHIFT, i), key_at(rp >> PART_SHIFT, i + 1u));
}
fn value_chunk(rp: u32, c: u32) -> Chunk {
  let i = 2u * ((rp & ROW_MASK) * LPK + c);
  return Chunk(value_at(rp >> PART_SHIFT, i), value_at(rp >> PART_SHIFT, i + 1u));
}
#endif

// The max (is_max) or sum of v over the TPH threads of this thread's head, returned to all of
// them. Two levels of at most 16 terms each (TPH <= 256): every 16th thread folds its group
// into its own slot, then every thread folds the group results. Starts with a barrier, so that
// the caller's earlier reads of scratch are done.
fn head_reduce(lid: u32, v: f32, is_max: bool) -> f32 {
  let seg = (lid / TPH) * TPH;
  let j = lid % TPH;
  workgroupBarrier();
  scratch[lid] = v;
  workgroupBarrier();
  if (j % 16u == 0u) {
    var r = v;
    for (var k = 1u; k < 16u && j + k < TPH; k++) {
      let x = scratch[lid + k];
      r = select(r + x, max(r, x), is_max);
    }
    scratch[lid] = r;
  }
  workgroupBarrier();
  var r = scratch[seg];
  for (var k = 16u; k < TPH; k += 16u) {
    let x = scratch[seg + k];
    r = select(r + x, max(r, x), is_max);
  }
  return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let head_blocks = params.num_heads / NQ;
  let w = wg_index(wid, nwg);
  let part = w % params.partitions;
  let hb = (w / params.partitions) % head_blocks;
  let seq = w / (params.partitions * head_blocks);
  if (seq >= params.num_seqs) { return; }
  // through workgroup memory so that every thread provably sees the same value (the loop
  // bounds below must be uniform for the barriers; a storage read is not, once bindings
  // are read_write because the planner saw aliasing)
  if (lid == 0u) { ctx_sh = u32(clamp(context_lens[seq], 0, i32(params.max_blocks * params.block_size))); }
  let ctx = workgroupUniformLoad(&ctx_sh);
  let lo = part * params.partition_size;
  let hi = min(lo + params.partition_size, ctx);
  let h0 = hb * NQ;
  let kvh = h0 / (params.num_heads / params.num_kv_heads);
  let width = params.num_heads * HS;
  if (lo >= hi) {
#if !PARTITIONED
    // an empty context (v1 only: v2's reduce kernel writes those rows) gives zeros
    for (var o = lid; o < NQ * HS; o += WG) { out[seq * width + h0 * HS + o] = 0.0; }
#endif
    return;
  }
  // the planner keeps partition_size <= PK; the min only keeps a planner bug inside the arrays
  let n = min(hi - lo, PK);
  let g = lid / LPK;
  let c = lid % LPK;

  // 0. cache rows; this lane's query dims [8c, 8c + 8) of each head
  let table = seq * params.max_blocks;
  for (var t = lid; t < n; t += WG) {
    let r = cache_row(table, lo + t, kvh);
    row_sh[t] = (r.y << PART_SHIFT) | r.x;
  }
  var qr: array<Chunk, NQ>;
  for (var h = 0u; h < NQ; h++) {
    let b = seq * width + (h0 + h) * HS + 8u * c;
    qr[h] = Chunk(vec4f(q[b], q[b + 1u], q[b + 2u], q[b + 3u]) * params.scale, vec4f(q[b + 4u], q[b + 5u], q[b + 6u], q[b + 7u]) * params.scale);
  }
  workgroupBarrier();

  // 1. scores. Round r writes partials buffer r % 2; the barrier after round r + 1's writes
  //    follows every thread's reads of round r, so round r + 2 may overwrite it.
  for (var r0 = 0u; r0 < n; r0 += TK) {
    let buf = ((r0 / TK) & 1u) * RB;
    var kc: array<Chunk, KPL>;
    for (var i = 0u; i < KPL; i++) { kc[i] = key_chunk(row_sh[min(r0 + i * KG + g, n - 1u)], c); }
    for (var i = 0u; i < KPL; i++) {
      for (var h = 0u; h < NQ; h++) {
        scratch[buf + ((i * KG + g) * NQ + h) * KPAD + c] = dot(qr[h].lo, kc[i].lo) + dot(qr[h].hi, kc[i].hi);
      }
    }
    workgroupBarrier();
    // u = key of the round * NQ + head
    for (var u = lid; u < TK * NQ; u += WG) {
      let t = r0 + u / NQ;
      if (t < n) {
        var s = 0.0;
        for (var k = 0u; k < LPK; k++) { s += scratch[buf + u * KPAD + k]; }
        score_sh[(u % NQ) * PK + t] = s;
      }
    }
  }
  workgroupBarrier();

  // 2. softmax: head lid / TPH, keys j, j + TPH, ...
  let hh = lid / TPH;
  let j = lid % TPH;
  var mx = -3.0e38;
  for (var t = j; t < n; t += TPH) { mx = max(mx, score_sh[hh * PK + t]); }
  let m = head_reduce(lid, mx, true);
  var sum = 0.0;
  for (var t = j; t < n; t += TPH) {
    let p = exp(score_sh[hh * PK + t] - m);
    score_sh[hh * PK + t] = p;
    sum += p;
  }
  let l = head_reduce(lid, sum, false);
  if (j == 0u) {
    ml_sh[2u * hh] = m;
    ml_sh[2u * hh + 1u] = l;
  }
  // (head_reduce's barriers also made the probabilities visible to phase 3)

  // 3. PV over this lane's keys g, g + KG, ...
  var acc: array<Chunk, NQ>;
  for (var r0 = 0u; r0 < n; r0 += TK) {
    var vc: array<Chunk, KPL>;
    for (var i = 0u; i < KPL; i++) { vc[i] = value_chunk(row_sh[min(r0 + i * KG + g, n - 1u)], c); }
    for (var i = 0u; i < KPL; i++) {
      let t = r0 + i * KG + g;
      let tt = min(t, n - 1u);
      for (var h = 0u; h < NQ; h++) {
        let p = select(0.0, score_sh[h * PK + tt], t < n);
        acc[h].lo += p * vc[i].lo;
        acc[h].hi += p * vc[i].hi;
      }
    }
  }

  // 4. per head: dim 8c + k of key group g at scratch[(k * KG + g) * LPK + c] (a warp's
  //    lanes write consecutive words); thread k * LPK + c < HS sums over the groups
  for (var h = 0u; h < NQ; h++) {
    workgroupBarrier();
    for (var k = 0u; k < 4u; k++) {
      scratch[(k * KG + g) * LPK + c] = acc[h].lo[k];
      scratch[((k + 4u) * KG + g) * LPK + c] = acc[h].hi[k];
    }
    workgroupBarrier();
    if (lid < HS) {
      let k = lid / LPK;
      let cc = lid % LPK;
      var o = 0.0;
      for (var gg = 0u; gg < KG; gg++) { o += scratch[(k * KG + gg) * LPK + cc]; }
      let d = 8u * cc + k;
#if PARTITIONED
      let r = (seq * params.num_heads + h0 + h) * params.partitions + part;
      part_out[r * HS + d] = o;
      if (lid == 0u) {
        part_ml[2u * r] = ml_sh[2u * h];
        part_ml[2u * r + 1u] = ml_sh[2u * h + 1u];
      }
#else
      out[seq * width + (h0 + h) * HS + d] = o / ml_sh[2u * h + 1u];
#endif
    }
  }
}

// prefill_attention on the matrix units: subgroup matrices (f16 x f16 -> f32, 16 x 16 x 16) for
// Q K^T and P V, head size 128, f16 cache. Contract as prefill_attention.wgsl: q, out
// [num_tokens, num_heads * 128] f32; K/V from the paged cache, whole or in parts (KV_PARTS_2..4);
// sequence s owns query rows [query_starts[s], query_starts[s + 1]); with qlen of them, row i
// sits at position context_lens[s] - qlen + i and sees keys at positions <= its own; GQA by
// kv = head / group.
//
// prefill_attention_flash.wgsl multiplies on the f32 units, ~9 TFLOP/s on an H200 (a 1,000-request
// 7B run, 3.7% of WebGPU's GPU time; on a long prompt attention's n^2 outgrows the matmuls).
//
// A workgroup of four subgroups takes BQ = 64 query rows (16 per subgroup) of one sequence and
// one head and walks the keys they see in tiles of TK = 64. A subgroup's accumulators are opaque:
// WGSL cannot scale their rows, so the online softmax's rescaling of the output by exp(m_old -
// m_new) is not possible. Instead two passes over the keys:
//   1. S = Q K^T a tile at a time (4 x 8 multiplies a subgroup), into workgroup memory; each row's
//      max by two lanes (32 keys each), masked by position
//   2. S again, P = exp(S - m) in f16 (in [0, 1]) and each row's sum l of it, then O += P V (4 x
//      8 multiplies; V's loads are in flight during Q K^T), the accumulators never rescaled; the
//      rows are divided by l on their way out, through workgroup memory
// Q K^T runs twice (1.5x the FLOPs of one pass), which the matrix units afford. Q is staged once
// (pre-scaled, f16) and held in eight left matrices; K and V tiles are staged in turn through
// one workgroup buffer (16-byte loads from the cache, rows padded by 8 halves). Rows past the
// chunk and keys past the diagonal are masked; rows past the chunk are not written.
// Workgroup memory: 64 x 136 halves (17 KiB) + 64 x 68 f32 (17 KiB) + 64 x 72 halves (9 KiB) +
// the tile search's and the rows' ~2 KiB: ~46 KiB, under the 48 KiB of NVIDIA's Vulkan driver.
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
diagnostic(off, subgroup_uniformity);

#include "lib/common.wgsl"

alias kv_elem = vec4u; // 8 halves of a cache row
#include "lib/kv_pool.wgsl"

struct Params {
  num_seqs: u32,
  num_heads: u32,
  num_kv_heads: u32,
  block_size: u32,
  max_blocks: u32,
  scale: f32,
  tiles: u32,
#if KV_PARTS_2
  part_blocks: u32,
#endif
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4f>;
@group(0) @binding(4) var<storage, read> block_tables: array<i32>;
@group(0) @binding(5) var<storage, read> query_starts: array<i32>;
@group(0) @binding(6) var<storage, read> context_lens: array<i32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;

const WG = 128u;
const HS = 128u;
const BQ = 64u;
const TK = 64u;
const HP = HS + 8u;  // row stride of kv_sh (halves): 272 bytes, rows 16-byte aligned
const SP = TK + 4u;  // row stride of s_sh (floats)
const PP = TK + 8u;  // row stride of p_sh (halves)
const NONE = 0xffffffffu;
const NEG = -3.0e38;

var<workgroup> kv_sh: array<f16, BQ * HP>; // Q at the start, then K or V tiles (TK == BQ rows)
var<workgroup> s_sh: array<f32, BQ * SP>;
var<workgroup> p_sh: array<f16, BQ * PP>;
var<workgroup> row_sh: array<u32, TK>;
var<workgroup> inv_sh: array<f32, BQ>; // each row's 1 / l
#if KV_PARTS_2
var<workgroup> part_sh: array<u32, TK>;
#endif
#include "lib/query_tile.wgsl"

// the 8 halves of v into kv_sh at d
fn put8(d: u32, v: vec4u) {
  let h0 = bitcast<vec2<f16>>(v.x);
  let h1 = bitcast<vec2<f16>>(v.y);
  let h2 = bitcast<vec2<f16>>(v.z);
  let h3 = bitcast<vec2<f16>>(v.w);
  kv_sh[d] = h0.x;
  kv_sh[d + 1u] = h0.y;
  kv_sh[d + 2u] = h1.x;
  kv_sh[d + 3u] = h1.y;
  kv_sh[d + 4u] = h2.x;
  kv_sh[d + 5u] = h2.y;
  kv_sh[d + 6u] = h3.x;
  kv_sh[d + 7u] = h3.y;
}

// cache rows (and parts) of keys [t0, t0 + TK) below hi into row_sh
fn find_rows(lid: u32, table: u32, t0: u32, hi: u32, kvh: u32) {
  if (lid < TK) {
    let pos = t0 + lid;
    var row = NONE;
    if (pos < hi) {
      let r = cache_row(table, pos, kvh);
      row = r.x;
#if KV_PARTS_2
      part_sh[lid] = r.y;
#endif
    }
    row_sh[lid] = row;
  }
}

// Thread lid's share of a K or V tile: 16-byte chunk lid % 16 of keys lid / 16 + 8i (i < 8),
// zeros for keys past the range. Loaded into registers first (load_kv), so that a tile's loads
// can be in flight while the matrix units work, then stored into kv_sh (put_kv).
struct Kv8 { c0: vec4u, c1: vec4u, c2: vec4u, c3: vec4u, c4: vec4u, c5: vec4u, c6: vec4u, c7: vec4u }

fn kv_chunk(lid: u32, i: u32, is_key: bool) -> vec4u {
  let t = (lid >> 4u) + 8u * i;
  let row = row_sh[t];
#if KV_PARTS_2
  let part = part_sh[t];
#else
  let part = 0u;
#endif
  var v = vec4u(0u);
  if (row != NONE) {
    let e = row * (HS / 8u) + (lid & 15u);
    if (is_key) { v = key_at(part, e); } else { v = value_at(part, e); }
  }
  return v;
}

fn load_kv(lid: u32, is_key: bool) -> Kv8 {
  return Kv8(kv_chunk(lid, 0u, is_key), kv_chunk(lid, 1u, is_key), kv_chunk(lid, 2u, is_key), kv_chunk(lid, 3u, is_key),
             kv_chunk(lid, 4u, is_key), kv_chunk(lid, 5u, is_key), kv_chunk(lid, 6u, is_key), kv_chunk(lid, 7u, is_key));
}

fn put_kv(lid: u32, x: Kv8) {
  let d = (lid >> 4u) * HP + 8u * (lid & 15u);
  put8(d, x.c0);
  put8(d + 8u * HP, x.c1);
  put8(d + 16u * HP, x.c2);
  put8(d + 24u * HP, x.c3);
  put8(d + 32u * HP, x.c4);
  put8(d + 40u * HP, x.c5);
  put8(d + 48u * HP, x.c6);
  put8(d + 56u * HP, x.c7);
}

// this subgroup's 16 rows of S = Q K^T for the staged K tile (keys 16j.. in column block j) into s_sh
fn scores(sg: u32, q0: subgroup_matrix_left<f16, 16, 16>, q1: subgroup_matrix_left<f16, 16, 16>,
          q2: subgroup_matrix_left<f16, 16, 16>, q3: subgroup_matrix_left<f16, 16, 16>,
          q4: subgroup_matrix_left<f16, 16, 16>, q5: subgroup_matrix_left<f16, 16, 16>,
          q6: subgroup_matrix_left<f16, 16, 16>, q7: subgroup_matrix_left<f16, 16, 16>) {
  for (var j = 0u; j < TK / 16u; j++) {
    let kb = 16u * j * HP;
    var s = subgroup_matrix_result<f32, 16, 16>();
    s = subgroupMatrixMultiplyAccumulate(q0, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&kv_sh, kb, HP), s);
    s = subgroupMatrixMultiplyAccumulate(q1, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&kv_sh, kb + 16u, HP), s);
    s = subgroupMatrixMultiplyAccumulate(q2, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&kv_sh, kb + 32u, HP), s);
    s = subgroupMatrixMultiplyAccumulate(q3, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&kv_sh, kb + 48u, HP), s);
    s = subgroupMatrixMultiplyAccumulate(q4, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&kv_sh, kb + 64u, HP), s);
    s = subgroupMatrixMultiplyAccumulate(q5, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&kv_sh, kb + 80u, HP), s);
    s = subgroupMatrixMultiplyAccumulate(q6, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&kv_sh, kb + 96u, HP), s);
    s = subgroupMatrixMultiplyAccumulate(q7, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&kv_sh, kb + 112u, HP), s);
    subgroupMatrixStore<row_major>(&s_sh, 16u * sg * SP + 16u * j, s, SP);
  }
}

// P V for this subgroup's 16 rows: the staged V tile (rows = keys) times its P rows, one output
// column block of 16 dims
fn pv(sg: u32, e: u32, o: subgroup_matrix_result<f32, 16, 16>) -> subgroup_matrix_result<f32, 16, 16> {
  var acc = o;
  for (var c = 0u; c < TK / 16u; c++) {
    let p = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&p_sh, 16u * sg * PP + 16u * c, PP);
    let v = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&kv_sh, 16u * c * HP + 16u * e, HP);
    acc = subgroupMatrixMultiplyAccumulate(p, v, acc);
  }
  return acc;
}

// one 16 x 16 output block of this subgroup's rows at (token row `tr`, column `col` of out),
// each row scaled by its 1 / l (inv_sh): through s_sh, and only the subgroup's rows < n
fn put_out(o: subgroup_matrix_result<f32, 16, 16>, tr: u32, col: u32, width: u32, n: u32, sg: u32, lane: u32) {
  subgroupMatrixStore<row_major>(&s_sh, 16u * sg * SP, o, SP);
  workgroupBarrier();
  for (var x = lane; x < 256u; x += 32u) {
    let r = x / 16u;
    if (r < n) { out[(tr + r) * width + col + x % 16u] = s_sh[(16u * sg + r) * SP + x % 16u] * inv_sh[16u * sg + r]; }
  }
  workgroupBarrier();
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = wg_index(wid, nwg);
  let head = w % params.num_heads;
  // query tiles last to first, as the flash kernel (its last tiles see the most keys)
  let wt = w / params.num_heads;
  if (wt >= params.tiles) { return; }
  let tile = params.tiles - 1u - wt;
  find_query_tile(lid, tile);
  let info = workgroupUniformLoad(&tile_sh);
  let seq = info.x;
  if (seq >= params.num_seqs) { return; }
  let ctx = workgroupUniformLoad(&ctx_sh);
  let r0 = info.y;
  let qlen = info.w;
  let rows = min(BQ, qlen - r0);
  let kvh = head / (params.num_heads / params.num_kv_heads);
  let width = params.num_heads * HS;
  let first = i32(ctx) - i32(qlen);
  let table = seq * params.max_blocks;
  let sg = lid / 32u;
  let lane = lid % 32u;

  // Q, pre-scaled, as f16 in kv_sh (zeros past the chunk); then each subgroup's 8 left matrices
  for (var o = lid; o < BQ * HS / 4u; o += WG) {
    let r = o / (HS / 4u);
    let c = o % (HS / 4u);
    var v = vec4f(0.0);
    if (r < rows) { v = q[((info.z + r0 + r) * width + head * HS) / 4u + c] * params.scale; }
    let d = r * HP + 4u * c;
    kv_sh[d] = f16(v.x);
    kv_sh[d + 1u] = f16(v.y);
    kv_sh[d + 2u] = f16(v.z);
    kv_sh[d + 3u] = f16(v.w);
  }
  workgroupBarrier();
  let qb = 16u * sg * HP;
  let q0 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&kv_sh, qb, HP);
  let q1 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&kv_sh, qb + 16u, HP);
  let q2 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&kv_sh, qb + 32u, HP);
  let q3 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&kv_sh, qb + 48u, HP);
  let q4 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&kv_sh, qb + 64u, HP);
  let q5 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&kv_sh, qb + 80u, HP);
  let q6 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&kv_sh, qb + 96u, HP);
  let q7 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&kv_sh, qb + 112u, HP);
  workgroupBarrier();

  // lanes 2r and 2r + 1 own row r of the subgroup's 16, keys [32 half, 32 half + 32) of a tile;
  // they read their scores in an order rotated by the row, which spreads the 16 rows over the banks
  let rr = lane >> 1u;
  let half = lane & 1u;
  let my = 16u * sg + rr; // the row within the workgroup's 64
  // its position (-1: past the chunk, sees nothing)
  let pos_r = select(-1, first + i32(r0 + my), my < rows);
  let hi = u32(max(first + i32(r0 + rows), 0)); // keys the workgroup's rows see: [0, hi)

  // pass 1: each row's max m over the keys it sees
  var m = NEG;
  for (var t0 = 0u; t0 < hi; t0 += TK) {
    find_rows(lid, table, t0, hi, kvh);
    workgroupBarrier();
    put_kv(lid, load_kv(lid, true));
    workgroupBarrier();
    scores(sg, q0, q1, q2, q3, q4, q5, q6, q7);
    workgroupBarrier();
    var x = NEG;
    for (var i = 0u; i < 32u; i++) {
      let c = 32u * half + ((i + rr) & 31u);
      x = max(x, select(NEG, s_sh[my * SP + c], i32(t0 + c) <= pos_r));
    }
    m = max(m, max(x, subgroupShuffleXor(x, 1u)));
    workgroupBarrier();
  }

  // pass 2: O = sum over tiles of P V with P = exp(S - m) in f16 (<= 1), and each row's sum l
  // of the same rounded P; the rows are scaled by 1 / l at the store. V's loads are issued
  // before Q K^T and stored after it.
  var l = 0.0;
  var o0 = subgroup_matrix_result<f32, 16, 16>();
  var o1 = subgroup_matrix_result<f32, 16, 16>();
  var o2 = subgroup_matrix_result<f32, 16, 16>();
  var o3 = subgroup_matrix_result<f32, 16, 16>();
  var o4 = subgroup_matrix_result<f32, 16, 16>();
  var o5 = subgroup_matrix_result<f32, 16, 16>();
  var o6 = subgroup_matrix_result<f32, 16, 16>();
  var o7 = subgroup_matrix_result<f32, 16, 16>();
  for (var t0 = 0u; t0 < hi; t0 += TK) {
    find_rows(lid, table, t0, hi, kvh);
    workgroupBarrier();
    put_kv(lid, load_kv(lid, true));
    workgroupBarrier();
    let vt = load_kv(lid, false);
    scores(sg, q0, q1, q2, q3, q4, q5, q6, q7);
    workgroupBarrier();
    for (var i = 0u; i < 32u; i++) {
      let c = 32u * half + ((i + rr) & 31u);
      let p = f16(select(0.0, exp(s_sh[my * SP + c] - m), i32(t0 + c) <= pos_r));
      l += f32(p);
      p_sh[my * PP + c] = p;
    }
    put_kv(lid, vt);
    workgroupBarrier();
    o0 = pv(sg, 0u, o0);
    o1 = pv(sg, 1u, o1);
    o2 = pv(sg, 2u, o2);
    o3 = pv(sg, 3u, o3);
    o4 = pv(sg, 4u, o4);
    o5 = pv(sg, 5u, o5);
    o6 = pv(sg, 6u, o6);
    o7 = pv(sg, 7u, o7);
    workgroupBarrier();
  }
  l += subgroupShuffleXor(l, 1u);
  if (half == 0u) { inv_sh[my] = select(0.0, 1.0 / l, l > 0.0); }
  workgroupBarrier();

  // this subgroup's rows that are in the chunk: 16, or fewer in the chunk's last tile (a
  // subgroup with none stores nothing, but still meets the barriers)
  let n = u32(clamp(i32(rows) - i32(16u * sg), 0, 16));
  let tr = info.z + r0 + 16u * sg;
  let col = head * HS;
  put_out(o0, tr, col, width, n, sg, lane);
  put_out(o1, tr, col + 16u, width, n, sg, lane);
  put_out(o2, tr, col + 32u, width, n, sg, lane);
  put_out(o3, tr, col + 48u, width, n, sg, lane);
  put_out(o4, tr, col + 64u, width, n, sg, lane);
  put_out(o5, tr, col + 80u, width, n, sg, lane);
  put_out(o6, tr, col + 96u, width, n, sg, lane);
  put_out(o7, tr, col + 112u, width, n, sg, lane);
}

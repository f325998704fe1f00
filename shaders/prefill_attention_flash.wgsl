// prefill_attention, flash variant: the WGSL counterpart of native's CUDA-core flash kernel
// (native/kernels/prefill_attention.cu). Contract as prefill_attention.wgsl (the tile-loop
// kernel, still the fallback): q, out [num_tokens, num_heads * HS] f32; K/V from the paged
// cache, whole or in parts (KV_PARTS_2..4), f16 (KV_F16) or f32; sequence s owns query rows
// [query_starts[s], query_starts[s + 1]); with qlen of them, row i sits at position
// context_lens[s] - qlen + i and sees keys at positions <= its own; GQA by kv = head / group.
//
// A workgroup of WG = 8 * BQ threads takes BQ query rows of one sequence and one query head
// and walks the keys they see, [0, position of its last row], in tiles of TK keys (key tiles
// wholly past the diagonal are never visited; the diagonal ones mask per row):
//   1. cache rows of the tile's keys from the block table         (TK threads)
//   2. the K tile into workgroup memory as f32 vec4s, rows HS / 4 + 1 vec4s apart (so that the
//      16 rows a group of threads reads at once start in different banks)
//   3. scores: thread (ry = lid / 16, kx = lid % 16) computes rows 2ry, 2ry + 1 x keys
//      kx + 16j (j < TK / 16) from the staged queries (pre-scaled) and keys, into registers,
//      one vec4 of each query row serving TK / 16 keys; its partial row maxima go to red_sh
//   4. each thread folds the 16 partial maxima of its rows into the running max (every thread
//      of a row group computes the same one), rescales its accumulators and its partial sum,
//      writes its probabilities to p_sh; the V tile replaces the K tile
//   5. acc[r][c] += sum_t p[r][t] v[t][c] for the thread's 2 rows x the vec4 columns kx + 16i
//      (i < HS / 64) of the output
// After the last tile the 16 partial sums of each row are added through red_sh. The grid is an
// upper bound of query tiles x num_heads (head-minor, so that the heads of one kv head and one
// query tile run side by side); a workgroup finds its (sequence, tile) by a prefix sum of the
// sequences' query-tile counts across its threads (log2 WG steps per WG sequences, where the
// tile kernel has one thread walk them all), and spare ones exit.
// The loops over a tile's keys run to params.tile_keys (= TK), not a constant, for the reason
// paged_attention_tile.wgsl gives (llvmpipe's compile time).

#include "lib/common.wgsl"

#if KV_F16
alias kv_pair = u32;
#else
alias kv_pair = vec2f;
#endif
alias kv_elem = kv_pair;
#include "lib/kv_pool.wgsl"

struct Params {
  num_seqs: u32,
  num_heads: u32,
  num_kv_heads: u32,
  block_size: u32,
  max_blocks: u32,
  scale: f32,
  tile_keys: u32,
  tiles: u32,
#if KV_PARTS_2
  part_blocks: u32,
#endif
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(4) var<storage, read> block_tables: array<i32>;
@group(0) @binding(5) var<storage, read> query_starts: array<i32>;
@group(0) @binding(6) var<storage, read> context_lens: array<i32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;

override WG: u32 = 256;  // 8 * BQ
override HS: u32 = 128;  // 64 or 128 (a multiple of 64)
override BQ: u32 = 32;   // query rows per workgroup, even
override TK: u32 = 32;   // keys per tile, a multiple of 16

const KPT: u32 = TK / 16u;  // keys per thread and row
const H4: u32 = HS / 4u;    // vec4s of a row
const DPV: u32 = HS / 64u;  // output vec4s per thread and row
const KS: u32 = H4 + 1u;    // stride of a staged K/V row, in vec4s
const PS: u32 = TK + 1u;    // stride of a row of p_sh
const NONE = 0xffffffffu;
const NEG = -3.0e38;

var<workgroup> q_sh: array<vec4f, BQ * H4>;
var<workgroup> kv_sh: array<vec4f, TK * KS>;
var<workgroup> p_sh: array<f32, BQ * PS>;
var<workgroup> red_sh: array<f32, BQ * 16u>;
var<workgroup> row_sh: array<u32, TK>;
#if KV_PARTS_2
var<workgroup> part_sh: array<u32, TK>;
#endif
#include "lib/query_tile.wgsl"

var<private> acc: array<vec4f, 2u * DPV>;
var<private> sc: array<f32, 2u * KPT>;

fn unpack_pair(w: kv_pair) -> vec2f {
#if KV_F16
  return unpack2x16float(w);
#else
  return w;
#endif
}

// the K (is_key) or V tile into kv_sh; zeros for rows past the range
fn load_tile(lid: u32, is_key: bool) {
  let half = HS / 2u;
  for (var u = lid; u < TK * H4; u += WG) {
    let t = u / H4;
    let c = u % H4;
    let row = row_sh[t];
#if KV_PARTS_2
    let part = part_sh[t];
#else
    let part = 0u;
#endif
    var v = vec4f(0.0);
    if (row != NONE) {
      let i = row * half + 2u * c;
      if (is_key) {
        v = vec4f(unpack_pair(key_at(part, i)), unpack_pair(key_at(part, i + 1u)));
      } else {
        v = vec4f(unpack_pair(value_at(part, i)), unpack_pair(value_at(part, i + 1u)));
      }
    }
    kv_sh[t * KS + c] = v;
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = wg_index(wid, nwg);
  let head = w % params.num_heads;
  // the launch's query tiles last to first: a sequence's last tiles see the most keys, and
  // starting them first shortens the tail (spare workgroups, now first, exit at once)
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
  // position of the chunk's first query (negative only for a caller's bug: those rows see nothing)
  let first = i32(ctx) - i32(qlen);
  let table = seq * params.max_blocks;
  let tk = params.tile_keys;

  // queries, pre-scaled; zeros for rows past the chunk
  for (var o = lid; o < BQ * H4; o += WG) {
    let r = o / H4;
    var v = vec4f(0.0);
    if (r < rows) {
      let i = (info.z + r0 + r) * width + head * HS + 4u * (o % H4);
      v = vec4f(q[i], q[i + 1u], q[i + 2u], q[i + 3u]) * params.scale;
    }
    q_sh[o] = v;
  }

  let kx = lid % 16u;
  let ry = lid / 16u;
  let ra = 2u * ry;
  // positions of the thread's two rows (-1: a row past the chunk, sees nothing)
  let pa = select(-1, first + i32(r0 + ra), ra < rows);
  let pb = select(-1, first + i32(r0 + ra + 1u), ra + 1u < rows);
  var ma = NEG;
  var mb = NEG;
  var la = 0.0;
  var lb = 0.0;
  for (var i = 0u; i < 2u * DPV; i++) { acc[i] = vec4f(0.0); }

  let hi = u32(max(first + i32(r0 + rows), 0));
  for (var t0 = 0u; t0 < hi; t0 += TK) {
    // 1. cache rows
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
    // 3. scores of rows ra, ra + 1 x keys kx + 16j
    for (var j = 0u; j < 2u * KPT; j++) { sc[j] = 0.0; }
    for (var c = 0u; c < H4; c++) {
      let qa = q_sh[ra * H4 + c];
      let qb = q_sh[(ra + 1u) * H4 + c];
      for (var j = 0u; j < KPT; j++) {
        let kv = kv_sh[(kx + 16u * j) * KS + c];
        sc[j] += dot(qa, kv);
        sc[KPT + j] += dot(qb, kv);
      }
    }
    for (var j = 0u; j < KPT; j++) {
      let pos = i32(t0 + kx + 16u * j);
      sc[j] = select(NEG, sc[j], pos <= pa);
      sc[KPT + j] = select(NEG, sc[KPT + j], pos <= pb);
    }
    var xa = NEG;
    var xb = NEG;
    for (var j = 0u; j < KPT; j++) {
      xa = max(xa, sc[j]);
      xb = max(xb, sc[KPT + j]);
    }
    red_sh[ra * 16u + kx] = xa;
    red_sh[(ra + 1u) * 16u + kx] = xb;
    workgroupBarrier();
    // 4. running maxima, rescale, probabilities; the V tile over the K tile
    var na = ma;
    var nb = mb;
    for (var c = 0u; c < 16u; c++) {
      na = max(na, red_sh[ra * 16u + c]);
      nb = max(nb, red_sh[(ra + 1u) * 16u + c]);
    }
    // exp(NEG - m) underflows to 0 once a key is in range; 1 while none is
    let aa = select(exp(ma - na), 1.0, na == NEG);
    let ab = select(exp(mb - nb), 1.0, nb == NEG);
    ma = na;
    mb = nb;
    var sa = 0.0;
    var sb = 0.0;
    for (var j = 0u; j < KPT; j++) {
      let ea = select(exp(sc[j] - na), 0.0, sc[j] == NEG);
      let eb = select(exp(sc[KPT + j] - nb), 0.0, sc[KPT + j] == NEG);
      sa += ea;
      sb += eb;
      p_sh[ra * PS + kx + 16u * j] = ea;
      p_sh[(ra + 1u) * PS + kx + 16u * j] = eb;
    }
    la = la * aa + sa;
    lb = lb * ab + sb;
    for (var i = 0u; i < DPV; i++) {
      acc[i] *= aa;
      acc[DPV + i] *= ab;
    }
    load_tile(lid, false);
    workgroupBarrier();
    // 5. P V into the thread's rows x vec4 columns kx + 16i
    for (var t = 0u; t < tk; t++) {
      let wa = p_sh[ra * PS + t];
      let wb = p_sh[(ra + 1u) * PS + t];
      for (var i = 0u; i < DPV; i++) {
        let v = kv_sh[t * KS + kx + 16u * i];
        acc[i] += wa * v;
        acc[DPV + i] += wb * v;
      }
    }
    workgroupBarrier();
  }

  // row sums: the 16 partial sums of each row
  red_sh[ra * 16u + kx] = la;
  red_sh[(ra + 1u) * 16u + kx] = lb;
  workgroupBarrier();
  var ta = 0.0;
  var tb = 0.0;
  for (var c = 0u; c < 16u; c++) {
    ta += red_sh[ra * 16u + c];
    tb += red_sh[(ra + 1u) * 16u + c];
  }
  let oa = (info.z + r0 + ra) * width + head * HS;
  let ob = oa + width;
  for (var i = 0u; i < DPV; i++) {
    let d = 4u * (kx + 16u * i);
    if (ra < rows) {
      let v = select(vec4f(0.0), acc[i] / ta, ta > 0.0);
      out[oa + d] = v.x;
      out[oa + d + 1u] = v.y;
      out[oa + d + 2u] = v.z;
      out[oa + d + 3u] = v.w;
    }
    if (ra + 1u < rows) {
      let v = select(vec4f(0.0), acc[DPV + i] / tb, tb > 0.0);
      out[ob + d] = v.x;
      out[ob + d + 1u] = v.y;
      out[ob + d + 2u] = v.z;
      out[ob + d + 3u] = v.w;
    }
  }
}

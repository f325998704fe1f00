// prefill_attention: causal attention for the prefill chunks of several sequences in one
// launch, every key and value (an earlier cached prefix and this chunk's own, already written
// by reshape_and_cache) read from the paged cache.
// q, out: [num_tokens, num_heads * HS] f32; query_starts: [num_seqs + 1] i32; context_lens:
// [num_seqs] i32; block_tables: [num_seqs, max_blocks] i32; caches as paged_attention.wgsl
// (whole, or in parts: KV_PARTS_2..4).
// Sequence s owns query rows [query_starts[s], query_starts[s + 1]); with qlen of them, row i
// sits at position context_lens[s] - qlen + i and sees keys at positions <= its own.
//
// Work split: a workgroup takes a tile of BQ query rows of one sequence times HPW query heads
// that share a kv head (NQ = BQ * HPW queries), and runs the tile loop of
// paged_attention_tile.wgsl over keys [0, position of its last row], masked causally per query.
// The planner cannot read query_starts (device data), so it launches an upper bound of
// query tiles, sum_s ceil(qlen_s / BQ) <= floor((num_tokens + num_seqs * (BQ - 1)) / BQ) per
// head block; a workgroup finds its (sequence, tile) by one thread scanning query_starts
// (O(num_seqs) reads from cache, small next to the tile loop), and the spare ones exit.
// Grid: max_tiles * (num_heads / HPW), tile-major so that the head blocks of one query tile
// run side by side.

#include "lib/common.wgsl"

struct Params {
  num_seqs: u32,
  num_heads: u32,
  num_kv_heads: u32,
  block_size: u32,
  max_blocks: u32,
  scale: f32,
  tile_keys: u32,
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

override BQ: u32 = 8;   // query rows per workgroup
override HPW: u32 = 4;  // query heads per workgroup; NQ = BQ * HPW, query qi = row qi / HPW, head qi % HPW

#include "paged_attention_tile.wgsl"

// (sequence or num_seqs if none, first row of the tile in the sequence, its first token row, qlen)
var<workgroup> tile_sh: vec4u;
var<workgroup> ctx_sh: u32;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let head_blocks = params.num_heads / HPW;
  let w = wg_index(wid, nwg);
  let hb = w % head_blocks;
  let tile = w / head_blocks;
  if (lid == 0u) {
    var found = vec4u(params.num_seqs, 0u, 0u, 0u);
    var before = 0u; // query tiles of the sequences before s
    for (var s = 0u; s < params.num_seqs; s++) {
      let start = query_starts[s];
      let qlen = u32(max(query_starts[s + 1u] - start, 0));
      let tiles = (qlen + BQ - 1u) / BQ;
      if (tile < before + tiles) {
        found = vec4u(s, (tile - before) * BQ, u32(start), qlen);
        ctx_sh = u32(clamp(context_lens[s], 0, i32(params.max_blocks * params.block_size)));
        break;
      }
      before += tiles;
    }
    tile_sh = found;
  }
  let info = workgroupUniformLoad(&tile_sh);
  let seq = info.x;
  if (seq >= params.num_seqs) { return; }
  let ctx = workgroupUniformLoad(&ctx_sh);
  let r0 = info.y;
  let qlen = info.w;
  let rows = min(BQ, qlen - r0);
  let h0 = hb * HPW;
  let kvh = h0 / (params.num_heads / params.num_kv_heads);
  let width = params.num_heads * HS;
  // position of the chunk's first query; negative when contextLens < qlen (a caller's bug:
  // those queries see nothing and come out as zeros)
  let first = i32(ctx) - i32(qlen);

  for (var o = lid; o < NQ * HS; o += WG) {
    let qi = o / HS;
    let r = qi / HPW;
    var v = 0.0;
    if (r < rows) { v = q[(info.z + r0 + r) * width + (h0 + qi % HPW) * HS + o % HS]; }
    q_sh[o] = v;
  }
  for (var qi = lid; qi < NQ; qi += WG) {
    let r = qi / HPW;
    qpos_sh[qi] = select(-1, first + i32(r0 + r), r < rows);
  }
  // keys up to the tile's last query
  let hi = u32(max(first + i32(r0 + rows), 0));
  attend(seq * params.max_blocks, kvh, 0u, hi, lid);

  for (var i = 0u; i < NACC; i++) {
    let o = lid + i * WG;
    let qi = o / HS;
    let r = qi / HPW;
    if (o < NQ * HS && r < rows) {
      let l = l_sh[qi];
      out[(info.z + r0 + r) * width + (h0 + qi % HPW) * HS + o % HS] = select(0.0, acc[i] / l, l > 0.0);
    }
  }
}

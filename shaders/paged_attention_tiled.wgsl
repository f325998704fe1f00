// paged_attention, tiled: the first decode kernel, now the fallback of paged_attention.wgsl for
// head sizes that kernel does not take (not 8 x a power of two up to 256). Decode attention
// over the paged KV cache, one query token per sequence.
// q, out: [num_seqs, num_heads * HS] f32; key_cache, value_cache: [num_blocks, block_size,
// num_kv_heads, HS] f32 | f16 (KV_F16: packed u32 pairs), or split into parts (KV_PARTS_2..4:
// key_cache_1.., see lib/kv_pool.wgsl); block_tables: [num_seqs, max_blocks]
// i32; context_lens: [num_seqs] i32.
//
// A workgroup takes NQ query heads that share one kv head (GQA: the K/V tiles are loaded once
// for all of them) over one partition of the sequence's context, and runs the online-softmax
// tile loop of paged_attention_tile.wgsl. Grid: num_seqs * (num_heads / NQ) * partitions.
//   v1 (partitions == 1): the partition is the whole context and the workgroup writes out.
//   v2 (PARTITIONED): partition p covers positions [p * partition_size, (p + 1) * partition_size)
//   so that a long context spreads over many workgroups; each writes its un-normalised output,
//   max and sum to part_out / part_ml, and paged_attention_reduce.wgsl merges them.
//   part_out: [num_seqs, num_heads, partitions, HS] f32; part_ml: [num_seqs, num_heads, partitions, 2] f32.
// A partition past the context writes nothing (the reduce kernel knows the context length).
// contextLens are clamped to max_blocks * block_size: the block table cannot say more.

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
  tile_keys: u32,
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

#include "paged_attention_tile.wgsl"

var<workgroup> ctx_sh: u32;

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

  for (var o = lid; o < NQ * HS; o += WG) { q_sh[o] = q[seq * width + h0 * HS + o]; }
  for (var qi = lid; qi < NQ; qi += WG) { qpos_sh[qi] = i32(ctx) - 1; }
  attend(seq * params.max_blocks, kvh, lo, hi, lid);

  for (var i = 0u; i < NACC; i++) {
    let o = lid + i * WG;
    if (o < NQ * HS) {
      let qi = o / HS;
      let d = o % HS;
#if PARTITIONED
      let r = (seq * params.num_heads + h0 + qi) * params.partitions + part;
      part_out[r * HS + d] = acc[i];
      if (d == 0u) {
        part_ml[2u * r] = m_sh[qi];
        part_ml[2u * r + 1u] = l_sh[qi];
      }
#else
      out[seq * width + (h0 + qi) * HS + d] = acc[i] / l_sh[qi];
#endif
    }
  }
}

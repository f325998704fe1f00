// paged_attention_reduce: merges the partitions of paged_attention's v2 (PARTITIONED) path.
// Partition p of a (sequence, head) left its max m_p, its sum l_p = sum exp(s - m_p) and its
// un-normalised output o_p = sum exp(s - m_p) v. With M = max_p m_p and w_p = exp(m_p - M):
//   out = sum_p w_p o_p / sum_p w_p l_p
// part_out: [num_seqs, num_heads, partitions, HS] f32; part_ml: [num_seqs, num_heads, partitions, 2] f32;
// context_lens: [num_seqs] i32; out: [num_seqs, num_heads * HS] f32.
// Only the ceil(context / partition_size) partitions that hold context are read (the rest were
// never written). One workgroup per (sequence, head); each thread owns HS / WG output
// elements and walks the partitions serially: no barriers, no workgroup memory.

#include "lib/common.wgsl"

struct Params { num_seqs: u32, num_heads: u32, partition_size: u32, partitions: u32, max_context: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> part_out: array<f32>;
@group(0) @binding(2) var<storage, read> part_ml: array<f32>;
@group(0) @binding(3) var<storage, read> context_lens: array<i32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

override WG: u32 = 64;
override HS: u32 = 128;
override NACC: u32 = 2;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let sh = wg_index(wid, nwg); // seq * num_heads + head
  if (sh >= params.num_seqs * params.num_heads) { return; }
  let seq = sh / params.num_heads;
  // clamped as paged_attention clamps it
  let ctx = u32(clamp(context_lens[seq], 0, i32(params.max_context)));
  let np = (ctx + params.partition_size - 1u) / params.partition_size;
  let base = sh * params.partitions;
  var mx = -3.0e38;
  for (var p = 0u; p < np; p++) { mx = max(mx, part_ml[2u * (base + p)]); }
  var den = 0.0;
  var acc: array<f32, NACC>;
  for (var p = 0u; p < np; p++) {
    let w = exp(part_ml[2u * (base + p)] - mx);
    den += w * part_ml[2u * (base + p) + 1u];
    for (var i = 0u; i < NACC; i++) {
      let d = lid + i * WG;
      if (d < HS) { acc[i] += w * part_out[(base + p) * HS + d]; }
    }
  }
  // an empty context gives zeros, as v1 does
  let inv = select(0.0, 1.0 / den, np > 0u);
  for (var i = 0u; i < NACC; i++) {
    let d = lid + i * WG;
    if (d < HS) { out[sh * HS + d] = acc[i] * inv; }
  }
}

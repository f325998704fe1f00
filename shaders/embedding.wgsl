// embedding: out[i, :] = table[ids[i], :]
// ids: [n] i32; table: [vocab, hidden] f32 | f16 | bf16 (16-bit types as u32 pairs, hidden even);
// out: [n, hidden] f32. One workgroup per token.

#include "lib/common.wgsl"

struct Params { n: u32, hidden: u32, vocab: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
#if W_F32
@group(0) @binding(2) var<storage, read> table: array<f32>;
#else
@group(0) @binding(2) var<storage, read> table: array<u32>;
#endif
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wg_index(wid, nwg);
  if (t >= params.n) { return; }
  // an id out of range reads row 0 rather than another tensor's memory; the host validates ids
  let id = u32(ids[t]);
  let row = select(0u, id, id < params.vocab);
  let h = params.hidden;
#if W_F32
  for (var j = lid; j < h; j += WG) {
    out[t * h + j] = table[row * h + j];
  }
#else
  let half_h = h / 2u;
  for (var j = lid; j < half_h; j += WG) {
#if W_BF16
    let v = unpack_bf16x2(table[row * half_h + j]);
#else
    let v = unpack2x16float(table[row * half_h + j]);
#endif
    out[t * h + 2u * j] = v.x;
    out[t * h + 2u * j + 1u] = v.y;
  }
#endif
}

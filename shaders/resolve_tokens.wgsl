// resolve_tokens: token ids the host did not know when it built a step, filled in from the
// previous step's sampled ids, in place. v <= -2 becomes sampled[-v - 2] (-1 if that row does
// not exist); token ids and -1 padding stay. ids: [n] i32 (flat); sampled: [m] i32.

#include "lib/common.wgsl"

struct Params { n: u32, m: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> ids: array<i32>;
@group(0) @binding(2) var<storage, read> sampled: array<i32>;

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wg_index(wid, nwg) * WG + lid;
  if (i >= params.n) { return; }
  let v = ids[i];
  if (v <= -2) {
    let row = u32(-v - 2);
    ids[i] = select(-1, sampled[min(row, params.m - 1u)], row < params.m);
  }
}

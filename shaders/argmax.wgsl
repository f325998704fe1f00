// argmax of each row, the lowest index on ties (as torch.argmax and the CPU reference).
// x: [n, v] f32; out: [n] i32. One workgroup per row.

#include "lib/common.wgsl"

struct Params { n: u32, v: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<i32>;

override WG: u32 = 256;
var<workgroup> best_v: array<f32, WG>;
var<workgroup> best_i: array<u32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wg_index(wid, nwg);
  if (row >= params.n) { return; }
  let base = row * params.v;
  var bv = -3.402823e38;
  var bi = 0xffffffffu;
  // strictly greater keeps each thread's lowest index; the tree below breaks ties by index
  for (var j = lid; j < params.v; j += WG) {
    let v = x[base + j];
    if (v > bv || bi == 0xffffffffu) { bv = v; bi = j; }
  }
  best_v[lid] = bv;
  best_i[lid] = bi;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let ov = best_v[lid + s];
      let oi = best_i[lid + s];
      if (oi != 0xffffffffu && (ov > best_v[lid] || (ov == best_v[lid] && oi < best_i[lid]) || best_i[lid] == 0xffffffffu)) {
        best_v[lid] = ov;
        best_i[lid] = oi;
      }
    }
    workgroupBarrier();
  }
  if (lid == 0u) { out[row] = i32(best_i[0]); }
}

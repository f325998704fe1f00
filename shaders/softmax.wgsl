// softmax over each row: out = exp(x - max) / sum(exp(x - max)).
// x, out: [n, v] f32; IN_PLACE: out is x, bound once. One workgroup per row; three passes over the row
// (max, sum, write), the last two served from cache for the vocabulary sizes of LLMs.

#include "lib/common.wgsl"

struct Params { n: u32, v: u32 }
@group(0) @binding(0) var<uniform> params: Params;
#if !IN_PLACE
@group(0) @binding(1) var<storage, read> x: array<f32>;
#endif
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

override WG: u32 = 256;
var<workgroup> red: array<f32, WG>;

fn x_at(i: u32) -> f32 {
#if IN_PLACE
  return out[i];
#else
  return x[i];
#endif
}

fn reduce_max(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn reduce_sum(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wg_index(wid, nwg);
  if (row >= params.n) { return; }
  let base = row * params.v;
  var m = -3.402823e38;
  for (var j = lid; j < params.v; j += WG) { m = max(m, x_at(base + j)); }
  m = reduce_max(lid, m);
  var s = 0.0;
  for (var j = lid; j < params.v; j += WG) { s += exp(x_at(base + j) - m); }
  s = reduce_sum(lid, s);
  let inv = 1.0 / s;
  for (var j = lid; j < params.v; j += WG) { out[base + j] = exp(x_at(base + j) - m) * inv; }
}

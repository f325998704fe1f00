// rms_norm+residual, vec4, one workgroup per row, subgroup-free
#include "lib/common.wgsl"
struct Params { n: u32, hidden: u32, eps: f32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read> weight: array<vec2u>;
@group(0) @binding(3) var<storage, read_write> residual: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4f>;
var<workgroup> partial: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wg_index(wid, nwg);
  if (row >= params.n) { return; }
  let h4 = params.hidden / 4u;
  let base = row * h4;
  var ss = 0.0;
  for (var j = lid; j < h4; j += 256u) {
    let v = x[base + j] + residual[base + j];
    residual[base + j] = v;
    ss += dot(v, v);
  }
  partial[lid] = ss;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  let scale = inverseSqrt(partial[0] / f32(params.hidden) + params.eps);
  for (var j = lid; j < h4; j += 256u) {
    let wv = weight[j];
    let w4 = vec4f(unpack2x16float(wv.x), unpack2x16float(wv.y));
    out[base + j] = residual[base + j] * scale * w4;
  }
}

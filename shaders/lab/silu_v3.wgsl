#include "lib/common.wgsl"
struct Params { n: u32, inter4: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4f>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  // one workgroup per row, strided over the row
  let t = wg_index(wid, nwg);
  if (t >= params.n) { return; }
  let base = t * 2u * params.inter4;
  for (var j = lid; j < params.inter4; j += 256u) {
    let g = x[base + j];
    let u = x[base + params.inter4 + j];
    out[t * params.inter4 + j] = g / (1.0 + exp(-g)) * u;
  }
}

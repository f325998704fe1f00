#include "lib/common.wgsl"
struct Params { n: u32, inter4: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4f>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = wg_index(wid, nwg) * 256u + lid;
  if (idx >= params.n * params.inter4) { return; }
  let t = idx / params.inter4;
  let j = idx % params.inter4;
  let g = x[t * 2u * params.inter4 + j];
  let u = x[t * 2u * params.inter4 + params.inter4 + j];
  out[idx] = g / (1.0 + exp(-g)) * u;
}

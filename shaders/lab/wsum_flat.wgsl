// read-only bandwidth, grid-stride over all of w as one flat array (the copy kernel's shape)
#include "lib/common.wgsl"
struct Params { m: u32, n: u32, k: u32, ldo: u32, col0: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> w: array<vec4u>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let total = params.n * params.k / 8u;
  let stride = nwg.x * nwg.y * 256u;
  var acc = vec4f(0.0);
  for (var i = gid.x + gid.y * nwg.x * 256u; i < total; i += stride) {
    let u = w[i];
    acc += vec4f(unpack2x16float(u.x), unpack2x16float(u.y)) + vec4f(unpack2x16float(u.z), unpack2x16float(u.w));
  }
  if (acc.x == 12345.0) { out[0] = acc.y; }
}

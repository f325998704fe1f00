// matmul_splitk_reduce: out[r, col0 + c] = sum over s of part[s, r, c] (+ bias[col0 + c]), the
// second half of matmul_sgmat.wgsl's split-k launch.
// part: [splits, m, n] f32; bias: [ldo] f32; out: [m, ldo] f32.

#include "lib/common.wgsl"

struct Params { m: u32, n: u32, ldo: u32, col0: u32, splits: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;
#if BIAS
@group(0) @binding(2) var<storage, read> bias: array<f32>;
#endif
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wg_index(wid, nwg) * 256u + lid;
  let mn = params.m * params.n;
  if (i >= mn) { return; }
  var acc = 0.0;
  for (var s = 0u; s < params.splits; s++) { acc += part[s * mn + i]; }
  let r = i / params.n;
  let c = i % params.n;
#if BIAS
  acc += bias[params.col0 + c];
#endif
  out[r * params.ldo + params.col0 + c] = acc;
}

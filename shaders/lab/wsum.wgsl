// read-only bandwidth in the gemv_sg shape: stream w, no activations
enable subgroups;
#include "lib/common.wgsl"
struct Params { m: u32, n: u32, k: u32, ldo: u32, col0: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> w: array<vec4u>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
const CPT = 4u;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgs: u32) {
  let sg = lid / sgs;
  let col_base = (wg_index(wid, nwg) * 8u + sg) * CPT;
  let chunks = params.k / 8u;
  var acc = vec4f(0.0);
  for (var ch = lane; ch < chunks; ch += sgs) {
    for (var c = 0u; c < CPT; c++) {
      let u = w[min(col_base + c, params.n - 1u) * chunks + ch];
      acc += vec4f(unpack2x16float(u.x), unpack2x16float(u.y)) + vec4f(unpack2x16float(u.z), unpack2x16float(u.w));
    }
  }
  let s = subgroupAdd(acc.x + acc.y + acc.z + acc.w);
  if (lane == 0u) { out[col_base] = s; }
}

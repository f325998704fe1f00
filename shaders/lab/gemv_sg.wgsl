// gemv: one subgroup (32 lanes) per output column, subgroupAdd reduction, ROWS rows of a
enable subgroups;
#include "lib/common.wgsl"
struct Params { m: u32, n: u32, k: u32, ldo: u32, col0: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4f>;
@group(0) @binding(2) var<storage, read> w: array<vec4u>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
override ROWS: u32 = 1;
override CPT: u32 = 1; // columns per subgroup
const MAX_ROWS = 16u;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgs: u32) {
  let sg = lid / sgs;
  let per_wg = (256u / sgs) * CPT;
  let col0 = wg_index(wid, nwg) * per_wg + sg * CPT;
  let chunks = params.k / 8u;
  let k4 = params.k / 4u;
  var acc: array<array<f32, MAX_ROWS>, 4>;
  for (var ch = lane; ch < chunks; ch += sgs) {
    var wv: array<array<vec4f, 2>, 4>;
    for (var c = 0u; c < CPT; c++) {
      let col = min(col0 + c, params.n - 1u);
      let u = w[col * chunks + ch];
      wv[c] = array<vec4f, 2>(vec4f(unpack2x16float(u.x), unpack2x16float(u.y)), vec4f(unpack2x16float(u.z), unpack2x16float(u.w)));
    }
    for (var r = 0u; r < ROWS; r++) {
      let x0 = a[r * k4 + 2u * ch];
      let x1 = a[r * k4 + 2u * ch + 1u];
      for (var c = 0u; c < CPT; c++) {
        acc[c][r] += dot(x0, wv[c][0]) + dot(x1, wv[c][1]);
      }
    }
  }
  for (var c = 0u; c < CPT; c++) {
    for (var r = 0u; r < ROWS; r++) {
      let s = subgroupAdd(acc[c][r]);
      if (lane == 0u && col0 + c < params.n) { out[r * params.ldo + params.col0 + col0 + c] = s; }
    }
  }
}

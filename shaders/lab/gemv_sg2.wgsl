// gemv: one subgroup per CPT columns, U chunks in flight per lane, subgroupAdd reduction
enable subgroups;
#include "lib/common.wgsl"
struct Params { m: u32, n: u32, k: u32, ldo: u32, col0: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4f>;
@group(0) @binding(2) var<storage, read> w: array<vec4u>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
override ROWS: u32 = 1;
override CPT: u32 = 2;
override U: u32 = 4;
const MAX_ROWS = 16u;
fn w8(u: vec4u) -> array<vec4f, 2> {
  return array<vec4f, 2>(vec4f(unpack2x16float(u.x), unpack2x16float(u.y)), vec4f(unpack2x16float(u.z), unpack2x16float(u.w)));
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgs: u32) {
  let sg = lid / sgs;
  let per_wg = (256u / sgs) * CPT;
  let col0 = wg_index(wid, nwg) * per_wg + sg * CPT;
  let chunks = params.k / 8u;
  let k4 = params.k / 4u;
  var acc: array<array<f32, MAX_ROWS>, 4>;
  // chunks in groups of U * sgs: each lane issues U * CPT independent 16-byte loads first
  for (var base = 0u; base < chunks; base += U * sgs) {
    var wu: array<array<vec4u, 4>, 4>; // [column][u]
    for (var c = 0u; c < CPT; c++) {
      let col = min(col0 + c, params.n - 1u);
      for (var u = 0u; u < U; u++) {
        let ch = min(base + u * sgs + lane, chunks - 1u);
        wu[c][u] = w[col * chunks + ch];
      }
    }
    for (var u = 0u; u < U; u++) {
      let ch = base + u * sgs + lane;
      if (ch >= chunks) { break; }
      for (var r = 0u; r < ROWS; r++) {
        let x0 = a[r * k4 + 2u * ch];
        let x1 = a[r * k4 + 2u * ch + 1u];
        for (var c = 0u; c < CPT; c++) {
          let wv = w8(wu[c][u]);
          acc[c][r] += dot(x0, wv[0]) + dot(x1, wv[1]);
        }
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

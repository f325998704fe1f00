// subgroup-matrix matmul loading both operands straight from global memory (f16 a and w),
// no workgroup staging. 64x64 tile per workgroup of 4 subgroups (32x32 each, 2x2 accumulators).
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
#include "lib/common.wgsl"
struct Params { m: u32, n: u32, k: u32, ldo: u32, col0: u32, tiles_n: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f16>;
@group(0) @binding(2) var<storage, read> w: array<f16>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_size) sg_size: u32) {
  let tile = wg_index(wid, nwg);
  let sg = lid / sg_size;
  let r0 = (tile / params.tiles_n) * 128u + (sg / 2u) * 64u;
  let c0 = (tile % params.tiles_n) * 128u + (sg % 2u) * 64u;
  let k = params.k;
  var acc: array<subgroup_matrix_result<f32, 16, 16>, 16>;
  for (var kk = 0u; kk < k; kk += 16u) {
    var l: array<subgroup_matrix_left<f16, 16, 16>, 4>;
    var q: array<subgroup_matrix_right<f16, 16, 16>, 4>;
    for (var i = 0u; i < 4u; i++) {
      l[i] = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&a, (r0 + 16u * i) * k + kk, k);
      q[i] = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&w, (c0 + 16u * i) * k + kk, k);
    }
    for (var i = 0u; i < 4u; i++) {
      for (var j = 0u; j < 4u; j++) {
        acc[i * 4u + j] = subgroupMatrixMultiplyAccumulate(l[i], q[j], acc[i * 4u + j]);
      }
    }
  }
  let ldo = params.ldo;
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) {
      subgroupMatrixStore<row_major>(&out, (r0 + 16u * i) * ldo + c0 + 16u * j, acc[i * 4u + j], ldo);
    }
  }
}

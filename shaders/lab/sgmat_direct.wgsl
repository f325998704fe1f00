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
  let r0 = (tile / params.tiles_n) * 64u + (sg / 2u) * 32u;
  let c0 = (tile % params.tiles_n) * 64u + (sg % 2u) * 32u;
  let k = params.k;
  var acc00 = subgroup_matrix_result<f32, 16, 16>();
  var acc01 = subgroup_matrix_result<f32, 16, 16>();
  var acc10 = subgroup_matrix_result<f32, 16, 16>();
  var acc11 = subgroup_matrix_result<f32, 16, 16>();
  for (var kk = 0u; kk < k; kk += 16u) {
    let l0 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&a, r0 * k + kk, k);
    let l1 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&a, (r0 + 16u) * k + kk, k);
    let q0 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&w, c0 * k + kk, k);
    let q1 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&w, (c0 + 16u) * k + kk, k);
    acc00 = subgroupMatrixMultiplyAccumulate(l0, q0, acc00);
    acc01 = subgroupMatrixMultiplyAccumulate(l0, q1, acc01);
    acc10 = subgroupMatrixMultiplyAccumulate(l1, q0, acc10);
    acc11 = subgroupMatrixMultiplyAccumulate(l1, q1, acc11);
  }
  let ldo = params.ldo;
  subgroupMatrixStore<row_major>(&out, r0 * ldo + c0, acc00, ldo);
  subgroupMatrixStore<row_major>(&out, r0 * ldo + c0 + 16u, acc01, ldo);
  subgroupMatrixStore<row_major>(&out, (r0 + 16u) * ldo + c0, acc10, ldo);
  subgroupMatrixStore<row_major>(&out, (r0 + 16u) * ldo + c0 + 16u, acc11, ldo);
}

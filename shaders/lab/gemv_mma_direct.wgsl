// Lab variant of matmul_gemv_mma (bench/lab-gemv.ts, "mmad"): the matrix loads read a and w
// straight from storage, no workgroup tiles and no barrier in the k loop. Does the stream of
// weights run faster when each subgroup loads its own fragments than when the workgroup stages
// them through workgroup memory in 16-byte loads?
//
// A workgroup: four subgroups on one 16-column fragment, interleaved along k in steps of
// 64 * U (four multiplies per 64); the four meet in workgroup memory at the end. Split k as
// matmul_gemv_mma (k_chunk a multiple of 256 * U). a: [16, k] f16 (cast_f16.wgsl, rows past m
// zero); w: [n, k] f16 with n % 16 == 0 and k % (64 * U) == 0 (the lab's shapes); out as
// matmul_gemv_mma.
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
#include "lib/common.wgsl"

struct Params { m: u32, n: u32, k: u32, ldo: u32, col0: u32, wgs_n: u32, k_chunk: u32, split_stride: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f16>;
@group(0) @binding(2) var<storage, read> w: array<f16>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

override ROWS: u32 = 16;
override U: u32 = 1;
var<workgroup> red: array<f32, 1024>;

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wg_index(wid, nwg);
  let split = t / params.wgs_n;
  let col = (t % params.wgs_n) * 16u;
  let k_begin = split * params.k_chunk;
  let spare = k_begin >= params.k;
  let k_end = min(params.k, k_begin + params.k_chunk);
  let sg = lid / 32u;
  let k = params.k;
  var acc = subgroup_matrix_result<f32, 16, 16>();
  for (var k0 = k_begin + sg * 64u * U; k0 < k_end; k0 += 256u * U) {
    let l0 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&a, k0, k);
    let l1 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&a, k0 + 16u, k);
    let l2 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&a, k0 + 32u, k);
    let l3 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&a, k0 + 48u, k);
    let r0 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&w, col * k + k0, k);
    let r1 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&w, col * k + k0 + 16u, k);
    let r2 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&w, col * k + k0 + 32u, k);
    let r3 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&w, col * k + k0 + 48u, k);
    if (U > 1u) {
      let l4 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&a, k0 + 64u, k);
      let l5 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&a, k0 + 80u, k);
      let l6 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&a, k0 + 96u, k);
      let l7 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&a, k0 + 112u, k);
      let r4 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&w, col * k + k0 + 64u, k);
      let r5 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&w, col * k + k0 + 80u, k);
      let r6 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&w, col * k + k0 + 96u, k);
      let r7 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&w, col * k + k0 + 112u, k);
      acc = subgroupMatrixMultiplyAccumulate(l0, r0, acc);
      acc = subgroupMatrixMultiplyAccumulate(l1, r1, acc);
      acc = subgroupMatrixMultiplyAccumulate(l2, r2, acc);
      acc = subgroupMatrixMultiplyAccumulate(l3, r3, acc);
      acc = subgroupMatrixMultiplyAccumulate(l4, r4, acc);
      acc = subgroupMatrixMultiplyAccumulate(l5, r5, acc);
      acc = subgroupMatrixMultiplyAccumulate(l6, r6, acc);
      acc = subgroupMatrixMultiplyAccumulate(l7, r7, acc);
    } else {
      acc = subgroupMatrixMultiplyAccumulate(l0, r0, acc);
      acc = subgroupMatrixMultiplyAccumulate(l1, r1, acc);
      acc = subgroupMatrixMultiplyAccumulate(l2, r2, acc);
      acc = subgroupMatrixMultiplyAccumulate(l3, r3, acc);
    }
  }
  subgroupMatrixStore<row_major>(&red, sg * 256u, acc, 16u);
  workgroupBarrier();
  if (spare) { return; }
  let base = split * params.split_stride;
  for (var e = lid; e < ROWS * 16u; e += 128u) {
    let r = e / 16u;
    let c = e % 16u;
    let s = red[r * 16u + c] + red[256u + r * 16u + c] + red[512u + r * 16u + c] + red[768u + r * 16u + c];
    out[base + r * params.ldo + params.col0 + col + c] = s;
  }
}

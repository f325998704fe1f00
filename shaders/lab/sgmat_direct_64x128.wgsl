// The op's matmul_sgmat until 2026-11-26 (kept for bench/lab.ts): out = a @ w^T (+ bias) on the
// matrix units through WGSL
// subgroup matrices, f16 x f16 -> f32, 16 x 16 x 16.
//
// Both operands are read straight from global memory by subgroupMatrixLoad (a first staged
// version copied tiles through workgroup memory and ran 4x slower on an H200: see
// docs/perf-notes.md and shaders/lab/sgmat_staged.wgsl). A subgroup owns a 32 x 64 block of
// out as 2 x 4 accumulators (6 matrix loads feed 8 multiplies per k step); a workgroup of
// four subgroups owns 64 x 128. Tiles that cross the edge of out are stored through
// workgroup memory with bounds checks; the others are stored directly.
// a: [m_pad, k] f16, m_pad a multiple of 64 (zero rows past m, see cast_f16.wgsl); w: [n, k] f16;
// k % 16 == 0 and n % 16 == 0; bias: [ldo] f32; out: [m, ldo] f32, columns [col0, col0 + n).

enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
// Each subgroup loads its own block: offsets are uniform within a subgroup, which is what the
// matrix units need, though not within the workgroup, which is all Tint can prove.
diagnostic(off, chromium.subgroup_matrix_uniformity);

#include "lib/common.wgsl"

struct Params { m: u32, n: u32, k: u32, ldo: u32, col0: u32, tiles_n: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f16>;
@group(0) @binding(2) var<storage, read> w: array<f16>;
#if BIAS
@group(0) @binding(3) var<storage, read> bias: array<f32>;
#endif
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const TM = 64u;
const TN = 128u;
// one 16 x 16 result per subgroup at a time, for the edge tiles
var<workgroup> edge: array<f32, 4u * 256u>;

fn store(acc: subgroup_matrix_result<f32, 16, 16>, r: u32, c: u32, inside: bool, sg: u32, lane: u32, sgs: u32) {
  if (inside) {
    subgroupMatrixStore<row_major>(&out, r * params.ldo + params.col0 + c, acc, params.ldo);
  } else {
    subgroupMatrixStore<row_major>(&edge, sg * 256u, acc, 16u);
    workgroupBarrier();
    for (var e = lane; e < 256u; e += sgs) {
      let rr = r + e / 16u;
      let cc = c + e % 16u;
      if (rr < params.m && cc < params.n) { out[rr * params.ldo + params.col0 + cc] = edge[sg * 256u + e]; }
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgs: u32) {
  let tile = wg_index(wid, nwg);
  let tr = (tile / params.tiles_n) * TM;
  let tc = (tile % params.tiles_n) * TN;
  // the planner uses this kernel only where subgroups are 32 wide: 4 subgroups, 2 x 2 blocks
  let sg = lid / sgs;
  let r0 = tr + (sg / 2u) * 32u;
  let c0 = tc + (sg % 2u) * 64u;
  let k = params.k;
  var c00 = subgroup_matrix_result<f32, 16, 16>();
  var c01 = subgroup_matrix_result<f32, 16, 16>();
  var c02 = subgroup_matrix_result<f32, 16, 16>();
  var c03 = subgroup_matrix_result<f32, 16, 16>();
  var c10 = subgroup_matrix_result<f32, 16, 16>();
  var c11 = subgroup_matrix_result<f32, 16, 16>();
  var c12 = subgroup_matrix_result<f32, 16, 16>();
  var c13 = subgroup_matrix_result<f32, 16, 16>();
  for (var kk = 0u; kk < k; kk += 16u) {
    let l0 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&a, r0 * k + kk, k);
    let l1 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&a, (r0 + 16u) * k + kk, k);
    // w is [n, k] row-major: as the right operand [k, n] it is column-major with stride k
    let q0 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&w, c0 * k + kk, k);
    let q1 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&w, (c0 + 16u) * k + kk, k);
    let q2 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&w, (c0 + 32u) * k + kk, k);
    let q3 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&w, (c0 + 48u) * k + kk, k);
    c00 = subgroupMatrixMultiplyAccumulate(l0, q0, c00);
    c01 = subgroupMatrixMultiplyAccumulate(l0, q1, c01);
    c02 = subgroupMatrixMultiplyAccumulate(l0, q2, c02);
    c03 = subgroupMatrixMultiplyAccumulate(l0, q3, c03);
    c10 = subgroupMatrixMultiplyAccumulate(l1, q0, c10);
    c11 = subgroupMatrixMultiplyAccumulate(l1, q1, c11);
    c12 = subgroupMatrixMultiplyAccumulate(l1, q2, c12);
    c13 = subgroupMatrixMultiplyAccumulate(l1, q3, c13);
  }
  // uniform over the workgroup: every subgroup takes the same path, so the barriers in store() are safe
  let inside = tr + TM <= params.m && tc + TN <= params.n;
  store(c00, r0, c0, inside, sg, lane, sgs);
  store(c01, r0, c0 + 16u, inside, sg, lane, sgs);
  store(c02, r0, c0 + 32u, inside, sg, lane, sgs);
  store(c03, r0, c0 + 48u, inside, sg, lane, sgs);
  store(c10, r0 + 16u, c0, inside, sg, lane, sgs);
  store(c11, r0 + 16u, c0 + 16u, inside, sg, lane, sgs);
  store(c12, r0 + 16u, c0 + 32u, inside, sg, lane, sgs);
  store(c13, r0 + 16u, c0 + 48u, inside, sg, lane, sgs);
#if BIAS
  // the bias is added after the tile is in out (an accumulator cannot be indexed per element)
  storageBarrier();
  for (var e = lid; e < TM * TN; e += 128u) {
    let rr = tr + e / TN;
    let cc = tc + e % TN;
    if (rr < params.m && cc < params.n) {
      let i = rr * params.ldo + params.col0 + cc;
      out[i] = out[i] + bias[params.col0 + cc];
    }
  }
#endif
}

// matmul_sgmat: out = a @ w^T (+ bias) on the matrix units (tensor cores) through WGSL
// subgroup matrices, f16 x f16 -> f32 16 x 16 x 16. A 64 x 64 output tile per workgroup of
// four 32-wide subgroups, each owning a 32 x 32 quarter as 2 x 2 accumulators; k in steps of
// 32 staged in workgroup memory as f16 (a is converted from f32 on the way in, so values
// beyond f16's range, 65504, saturate). The tile is staged through workgroup memory on the
// way out too, which makes any m, n and the bias simple.
// a: [m, k] f32; w: [n, k] f32 | f16 | bf16 (k even for 16-bit); bias: [ldo] f32;
// out: [m, ldo] f32, columns [col0, col0 + n) written.

enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
// Each subgroup loads its own quarter: the offsets are uniform within a subgroup, which is
// what the matrix units need, though not within the workgroup, which is all Tint can prove.
diagnostic(off, chromium.subgroup_matrix_uniformity);

#include "lib/common.wgsl"

struct Params { m: u32, n: u32, k: u32, ldo: u32, col0: u32, tiles_n: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
#if W_F32
@group(0) @binding(2) var<storage, read> w: array<f32>;
#else
@group(0) @binding(2) var<storage, read> w: array<u32>;
#endif
#if BIAS
@group(0) @binding(3) var<storage, read> bias: array<f32>;
#endif
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const TM = 64u;
const TN = 64u;
const TK = 32u;
const THREADS = 128u;
var<workgroup> as_: array<f16, TM * TK>; // [TM][TK] row-major: the left operand
var<workgroup> ws_: array<f16, TN * TK>; // [TN][TK] row-major = the right operand [TK][TN] column-major
var<workgroup> cs_: array<f32, TM * TN>; // [TM][TN] the result tile

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_size) sg_size: u32) {
  let tile = wg_index(wid, nwg);
  let tr0 = (tile / params.tiles_n) * TM;
  let tc0 = (tile % params.tiles_n) * TN;
  let m = params.m;
  let n = params.n;
  let k = params.k;
  // the planner uses this kernel only where subgroups are 32 wide: 4 subgroups, 2 x 2 quarters
  let sg = lid / sg_size;
  let rb = (sg / 2u) * 32u;
  let cb = (sg % 2u) * 32u;
  var acc00 = subgroup_matrix_result<f32, 16, 16>();
  var acc01 = subgroup_matrix_result<f32, 16, 16>();
  var acc10 = subgroup_matrix_result<f32, 16, 16>();
  var acc11 = subgroup_matrix_result<f32, 16, 16>();
  for (var k0 = 0u; k0 < k; k0 += TK) {
    for (var e = lid; e < TM * TK; e += THREADS) {
      let gr = tr0 + e / TK;
      let gk = k0 + e % TK;
      var v = 0.0;
      if (gr < m && gk < k) { v = a[gr * k + gk]; }
      as_[e] = f16(clamp(v, -65504.0, 65504.0));
    }
#if W_F32
    for (var e = lid; e < TN * TK; e += THREADS) {
      let gc = tc0 + e / TK;
      let gk = k0 + e % TK;
      var v = 0.0;
      if (gc < n && gk < k) { v = w[gc * k + gk]; }
      ws_[e] = f16(v);
    }
#else
    // pairs of 16-bit weights: k is even, so a pair never straddles two rows
    for (var e = lid; e < TN * TK / 2u; e += THREADS) {
      let r = e / (TK / 2u);
      let gc = tc0 + r;
      let kk = 2u * (e % (TK / 2u));
      let gk = k0 + kk;
      var v = vec2f(0.0);
      if (gc < n && gk < k) {
        let u = w[(gc * k + gk) / 2u];
#if W_BF16
        v = unpack_bf16x2(u);
#else
        v = unpack2x16float(u);
#endif
      }
      ws_[r * TK + kk] = f16(v.x);
      ws_[r * TK + kk + 1u] = f16(v.y);
    }
#endif
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk += 16u) {
      let l0 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&as_, rb * TK + kk, TK);
      let l1 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&as_, (rb + 16u) * TK + kk, TK);
      let r0 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&ws_, cb * TK + kk, TK);
      let r1 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&ws_, (cb + 16u) * TK + kk, TK);
      if (k0 == 0xffffffffu) {
      acc00 = subgroupMatrixMultiplyAccumulate(l0, r0, acc00);
      acc01 = subgroupMatrixMultiplyAccumulate(l0, r1, acc01);
      acc10 = subgroupMatrixMultiplyAccumulate(l1, r0, acc10);
      acc11 = subgroupMatrixMultiplyAccumulate(l1, r1, acc11);
      }
    }
    workgroupBarrier();
  }
  subgroupMatrixStore<row_major>(&cs_, rb * TN + cb, acc00, TN);
  subgroupMatrixStore<row_major>(&cs_, rb * TN + cb + 16u, acc01, TN);
  subgroupMatrixStore<row_major>(&cs_, (rb + 16u) * TN + cb, acc10, TN);
  subgroupMatrixStore<row_major>(&cs_, (rb + 16u) * TN + cb + 16u, acc11, TN);
  workgroupBarrier();
  for (var e = lid; e < TM * TN; e += THREADS) {
    let r = tr0 + e / TN;
    let c = tc0 + e % TN;
    if (r < m && c < n) {
      var v = cs_[e];
#if BIAS
      v += bias[params.col0 + c];
#endif
      out[r * params.ldo + params.col0 + c] = v;
    }
  }
}

// matmul_tiled: out = a @ w^T (+ bias), the portable prefill kernel (no f16 arithmetic, no
// subgroups): a 64 x 64 output tile per workgroup, 16 x 16 threads with 4 x 4 outputs each,
// k in steps of 16 staged through workgroup memory as f32. Any m, n, k.
// a: [m, k] f32; w: [n, k] f32 | f16 | bf16; bias: [ldo] f32;
// out: [m, ldo] f32, columns [col0, col0 + n) written (w may be a row block of a larger weight).

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
const TK = 16u;
// +1 column of padding so that threads reading down a column hit different banks
var<workgroup> as_: array<array<f32, TK + 1u>, TM>;
var<workgroup> ws_: array<array<f32, TK + 1u>, TN>;

fn w_at(i: u32) -> f32 {
#if W_F32
  return w[i];
#elif W_BF16
  return half_at(w[i >> 1u], i, true);
#else
  return half_at(w[i >> 1u], i, false);
#endif
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid3: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let tile = wg_index(wid, nwg);
  let tr0 = (tile / params.tiles_n) * TM;
  let tc0 = (tile % params.tiles_n) * TN;
  let tx = lid3.x; // 4 output columns each
  let ty = lid3.y; // 4 output rows each
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < params.k; k0 += TK) {
    // 64 x 16 values of a and of w per step: 4 each per thread, zero outside the matrix
    for (var e = lid; e < TM * TK; e += 256u) {
      let r = e / TK;
      let kk = e % TK;
      let gr = tr0 + r;
      let gk = k0 + kk;
      as_[r][kk] = select(0.0, a[gr * params.k + gk], gr < params.m && gk < params.k);
      let gc = tc0 + r;
      ws_[r][kk] = select(0.0, w_at(gc * params.k + gk), gc < params.n && gk < params.k);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var av: array<f32, 4>;
      var wv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        av[i] = as_[ty * 4u + i][kk];
        wv[i] = ws_[tx * 4u + i][kk];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i][j] += av[i] * wv[j];
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = tr0 + ty * 4u + i;
    if (r >= params.m) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let c = tc0 + tx * 4u + j;
      if (c >= params.n) { continue; }
      var v = acc[i][j];
#if BIAS
      v += bias[params.col0 + c];
#endif
      out[r * params.ldo + params.col0 + c] = v;
    }
  }
}

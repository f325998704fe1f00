// matmul_gemv: out = a @ w^T (+ bias) for few rows of a (decode). Memory-bound: every weight
// is read once, 16 bytes at a time, and each is used for all ROWS rows of a, which stay in
// cache. A workgroup owns COLS output columns (rows of w); LANES = WG / COLS threads split
// each w row along k and their partial sums meet in workgroup memory.
// a: [m, k] f32 (m == ROWS); w: [n, k] f32 | f16 | bf16 with k % 8 == 0; bias: [n] f32;
// out: [m, ldo] f32, columns [col0, col0 + n) written (w may be a row block of a larger weight).

#include "lib/common.wgsl"

struct Params { m: u32, n: u32, k: u32, ldo: u32, col0: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4f>;
#if W_F32
@group(0) @binding(2) var<storage, read> w: array<vec4f>;
#else
@group(0) @binding(2) var<storage, read> w: array<vec4u>;
#endif
#if BIAS
@group(0) @binding(3) var<storage, read> bias: array<f32>;
#endif
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

override ROWS: u32 = 1;
override COLS: u32 = 4;
override WG: u32 = 256;
const MAX_ROWS = 16u;

var<workgroup> partial: array<f32, WG * MAX_ROWS>;

// eight weights of row `col` starting at element 8 * chunk
fn load_w8(col: u32, chunk: u32) -> array<vec4f, 2> {
#if W_F32
  let i = (col * params.k) / 4u + 2u * chunk;
  return array<vec4f, 2>(w[i], w[i + 1u]);
#else
  let u = w[(col * params.k) / 8u + chunk];
#if W_BF16
  return array<vec4f, 2>(vec4f(unpack_bf16x2(u.x), unpack_bf16x2(u.y)), vec4f(unpack_bf16x2(u.z), unpack_bf16x2(u.w)));
#else
  return array<vec4f, 2>(vec4f(unpack2x16float(u.x), unpack2x16float(u.y)), vec4f(unpack2x16float(u.z), unpack2x16float(u.w)));
#endif
#endif
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let lanes = WG / COLS;
  let c = lid / lanes;          // which of this workgroup's columns
  let lane = lid % lanes;       // position along k
  let col = wg_index(wid, nwg) * COLS + c;
  let chunks = params.k / 8u;
  let k4 = params.k / 4u;
  var acc: array<f32, MAX_ROWS>;
  if (col < params.n) {
    for (var ch = lane; ch < chunks; ch += lanes) {
      let wv = load_w8(col, ch);
      for (var r = 0u; r < ROWS; r++) {
        let x0 = a[r * k4 + 2u * ch];
        let x1 = a[r * k4 + 2u * ch + 1u];
        acc[r] += dot(x0, wv[0]) + dot(x1, wv[1]);
      }
    }
  }
  for (var r = 0u; r < ROWS; r++) {
    partial[r * WG + lid] = acc[r];
  }
  workgroupBarrier();
  for (var s = lanes / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var r = 0u; r < ROWS; r++) {
        partial[r * WG + lid] += partial[r * WG + lid + s];
      }
    }
    workgroupBarrier();
  }
  if (lane == 0u && col < params.n) {
    for (var r = 0u; r < ROWS; r++) {
      var v = partial[r * WG + lid];
#if BIAS
      v += bias[params.col0 + col];
#endif
      out[r * params.ldo + params.col0 + col] = v;
    }
  }
}

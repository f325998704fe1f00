// matmul_gemv_sg: out = a @ w^T (+ bias) for few rows of a (decode), with subgroups. The
// portable matmul_gemv.wgsl reduces through workgroup memory; here each subgroup reduces
// its partial dot products with subgroupAdd, which removes most barriers.
//
// A workgroup of 256 threads is GROUPS x SPLIT subgroups: GROUPS column groups of CPT
// columns (rows of w) each, and SPLIT subgroups sharing each group's k range, so that a
// layer with few output columns still puts enough warps on every SM. Each lane keeps U
// 16-byte weight loads of each column in flight before it uses them.
// a: [m, k] f32 (m == ROWS <= 16); w: [n, k] f16 | bf16 | f32 with k % 8 == 0; bias: [ldo] f32;
// out: [m, ldo] f32, columns [col0, col0 + n) written. W_TILED: w f16 in the tiled layout
// (lib/common.wgsl w_chunk).

enable subgroups;

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
override CPT: u32 = 2;
override SPLIT: u32 = 1;
override U: u32 = 1;
const MAX_ROWS = 16u;
const MAX_CPT = 4u;
const MAX_U = 4u;
const WG = 256u;

// partial sums of the SPLIT subgroups of each column group: [SPLIT][group * CPT + c][row]
var<workgroup> part: array<f32, 8u * 8u * MAX_CPT * MAX_ROWS>;

// the eight weights of chunk `ch` (elements 8ch .. 8ch+7) of row `col`
#if W_F32
fn load_w(col: u32, ch: u32, chunks: u32) -> array<vec4f, 2> {
  let i = 2u * (col * chunks + ch);
  return array<vec4f, 2>(w[i], w[i + 1u]);
}
#else
fn load_w(col: u32, ch: u32, chunks: u32) -> vec4u {
  return w[w_chunk(col, ch, chunks)];
}
#endif

fn widen(v: vec4u) -> array<vec4f, 2> {
#if W_BF16
  return array<vec4f, 2>(vec4f(unpack_bf16x2(v.x), unpack_bf16x2(v.y)), vec4f(unpack_bf16x2(v.z), unpack_bf16x2(v.w)));
#else
  return array<vec4f, 2>(vec4f(unpack2x16float(v.x), unpack2x16float(v.y)), vec4f(unpack2x16float(v.z), unpack2x16float(v.w)));
#endif
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgs: u32) {
  let sg = lid / sgs;
  let groups = (WG / sgs) / SPLIT;
  let group = sg / SPLIT;
  let split = sg % SPLIT;
  let col_base = (wg_index(wid, nwg) * groups + group) * CPT;
  let chunks = params.k / 8u;
  let k4 = params.k / 4u;
  // this subgroup's share of the k chunks
  let per = (chunks + SPLIT - 1u) / SPLIT;
  let ch0 = split * per;
  let ch1 = min(ch0 + per, chunks);

  var acc: array<array<f32, MAX_ROWS>, MAX_CPT>;
  for (var base = ch0; base < ch1; base += U * sgs) {
#if W_F32
    var wv: array<array<array<vec4f, 2>, MAX_U>, MAX_CPT>;
#else
    var wv: array<array<vec4u, MAX_U>, MAX_CPT>;
#endif
    for (var c = 0u; c < CPT; c++) {
      let col = min(col_base + c, params.n - 1u);
      for (var u = 0u; u < U; u++) {
        wv[c][u] = load_w(col, min(base + u * sgs + lane, chunks - 1u), chunks);
      }
    }
    for (var u = 0u; u < U; u++) {
      let ch = base + u * sgs + lane;
      if (ch >= ch1) { break; }
      for (var r = 0u; r < ROWS; r++) {
        let x0 = a[r * k4 + 2u * ch];
        let x1 = a[r * k4 + 2u * ch + 1u];
        for (var c = 0u; c < CPT; c++) {
#if W_F32
          let f = wv[c][u];
#else
          let f = widen(wv[c][u]);
#endif
          acc[c][r] += dot(x0, f[0]) + dot(x1, f[1]);
        }
      }
    }
  }
  for (var c = 0u; c < CPT; c++) {
    for (var r = 0u; r < ROWS; r++) {
      let s = subgroupAdd(acc[c][r]);
      if (lane == 0u) { part[(split * 8u * MAX_CPT + group * CPT + c) * MAX_ROWS + r] = s; }
    }
  }
  workgroupBarrier();
  // one thread per (column of this workgroup, row) adds the SPLIT partial sums
  let outputs = groups * CPT * ROWS;
  for (var i = lid; i < outputs; i += WG) {
    let gc = i / ROWS; // group * CPT + c
    let r = i % ROWS;
    let col = wg_index(wid, nwg) * groups * CPT + gc;
    if (col < params.n) {
      var s = 0.0;
      for (var p = 0u; p < SPLIT; p++) { s += part[(p * 8u * MAX_CPT + gc) * MAX_ROWS + r]; }
#if BIAS
      s += bias[params.col0 + col];
#endif
      out[r * params.ldo + params.col0 + col] = s;
    }
  }
}

// matmul_gemv_mma: out = a @ w^T (+ bias) for 1 to 64 rows of a (decode batches) on the matrix
// units through WGSL subgroup matrices, f16 x f16 -> f32, 16 x 16 x 16.
//
// matmul_gemv_rows multiplies on the f32 units: at 16 rows that is 16 FMAs a weight, and it
// binds (17-37% of copy at 16 rows, perf-notes). Here the rows of a are the rows of RT (1-4)
// left matrices of 16 (rows past m are zeros in workgroup memory), and the multiplies cost
// little beside the weights' stream, which is what this kernel is about: every weight read
// once, in 16-byte loads, with the next step's loads in flight while this one is multiplied.
// matmul_sgmat's 128 x 128 tiles stream each weight once per 128 rows too, but at 17-64 rows
// they are mostly padding and few (perf-notes).
//
// A workgroup is four 32-wide subgroups over TN = 16 * CF columns (CF 1, 2 or 4 fragments of
// 16): subgroup s takes fragment s % CF and k-phase s / CF, so the KPH = 4 / CF phases split
// each workgroup step of KW = 64 * SUB * KPH along k, 64 * SUB (4 * SUB multiplies) each. A
// step: every thread copies 4 * SUB of the step's 16-byte chunks of w (TN x KW halves; SUB sets
// the bytes in flight) and its share of a's 16 RT x KW f32 values (as f16; zeros past row m,
// whose loads are not made) into workgroup memory, one barrier, the next step's loads are
// issued, then each subgroup's multiplies; at the end the phases' accumulators meet in
// workgroup memory. Split k (grid = wgs_n column blocks x splits): as matmul_gemv_rows, split s
// sums k in [s * k_chunk, (s + 1) * k_chunk) into out + s * split_stride and
// matmul_splitk_reduce.wgsl adds the splits (and the bias); k_chunk is a multiple of KW.
//
// The rows are a runtime parameter: one pipeline per RT serves 16 RT - 15 .. 16 RT rows.
//
// a: [m, k] f32 (m <= 16 * RT); w: [n, k] f16 as vec4<u32> (8 halves), k % 8 == 0; bias:
// [ldo] f32; out: [m, ldo] f32, columns [col0, col0 + n) written. Columns of w past n and k
// past the chunk's end read as zeros. W_TILED: w in the tiled layout (lib/common.wgsl w_chunk).
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
#include "lib/common.wgsl"

struct Params { m: u32, n: u32, k: u32, ldo: u32, col0: u32, wgs_n: u32, k_chunk: u32, split_stride: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4f>;
@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;
#if BIAS
@group(0) @binding(3) var<storage, read> bias: array<f32>;
#endif
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

override RT: u32 = 1;
override CF: u32 = 1;
override SUB: u32 = 1;
const KPH = 4u / CF;
// k per phase per step: SUB times 64 (four multiplies each)
const KSP = 64u * SUB;
const KW = KSP * KPH;
const TN = 16u * CF;
// padded row length (halves) of both tiles: rows start 16 bytes apart from a bank's start
const WP = KW + 8u;
// a's f32 vec4s per step, and per thread (at most 8, the planner's limit: rows x KW / 512)
const A4 = 16u * RT * KW / 4u;
const AL = (A4 + 127u) / 128u;
const_assert AL <= 8u;
// w's 16-byte chunks per tile row
const CPR = KW / 8u;

var<workgroup> ws_: array<f16, TN * WP>;
var<workgroup> as_: array<f16, 16u * RT * WP>;
var<workgroup> red: array<f32, 4u * 256u>;

#include "lib/f16_tiles.wgsl"

// chunk j (0 .. 4 * SUB - 1) of this thread in the step at k8 (k / 8), or zeros past n or k
fn load_w(lid: u32, j: u32, col_wg: u32, kv: u32, end8: u32, full: bool) -> vec4<u32> {
  let c = lid + 128u * j;
  let row = c / CPR;
  let cc = c % CPR;
  let col = col_wg + row;
  if (full || (col < params.n && kv + cc < end8)) { return w[w_chunk(col, kv + cc, params.k / 8u)]; }
  return vec4<u32>();
}

fn put_w_chunk(lid: u32, j: u32, v: vec4<u32>) {
  let c = lid + 128u * j;
  put_w((c / CPR) * WP + (c % CPR) * 8u, v, c & 3u);
}

// element j (0..AL-1) of this thread's share of a in the step at k4 (k / 4): [row, 4 columns]
fn load_a(lid: u32, j: u32, kv4: u32, end4: u32) -> vec4f {
  let e = lid + 128u * j;
  let r = e / (KW / 4u);
  let c = e % (KW / 4u);
  if (e < A4 && r < params.m && kv4 + c < end4) { return a[r * (params.k / 4u) + kv4 + c]; }
  return vec4f();
}

// element j of this thread's share of a, as f16, into as_ (lib/f16_tiles.wgsl's put_a
// stages chunks that are f16 already)
fn put_a_share(lid: u32, j: u32, v: vec4f) {
  let e = lid + 128u * j;
  if (e < A4) {
    let d = (e / (KW / 4u)) * WP + (e % (KW / 4u)) * 4u;
    as_[d] = f16(v.x);
    as_[d + 1u] = f16(v.y);
    as_[d + 2u] = f16(v.z);
    as_[d + 3u] = f16(v.w);
  }
}

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wg_index(wid, nwg);
  let split = t / params.wgs_n;
  let col_wg = (t % params.wgs_n) * TN;
  let k_begin = split * params.k_chunk;
  // a grid rounded up to a rectangle (plan.ts grid) has spare workgroups past the last split:
  // they run no step and store nothing (but meet the others' barriers)
  let spare = k_begin >= params.k;
  let k_end = min(params.k, k_begin + params.k_chunk);
  let end8 = k_end / 8u;
  let end4 = k_end / 4u;
  let sg = lid / 32u;
  let frag = sg % CF;
  let phase = sg / CF;
  // every column of the tile inside n: steps wholly inside k need no guard per chunk
  let wfull = col_wg + TN <= params.n;

  var acc0 = subgroup_matrix_result<f32, 16, 16>();
  var acc1 = subgroup_matrix_result<f32, 16, 16>();
  var acc2 = subgroup_matrix_result<f32, 16, 16>();
  var acc3 = subgroup_matrix_result<f32, 16, 16>();
  var k0 = k_begin;
  var full = wfull && k0 + KW <= k_end;
  var w0 = load_w(lid, 0u, col_wg, k0 / 8u, end8, full);
  var w1 = load_w(lid, 1u, col_wg, k0 / 8u, end8, full);
  var w2 = load_w(lid, 2u, col_wg, k0 / 8u, end8, full);
  var w3 = load_w(lid, 3u, col_wg, k0 / 8u, end8, full);
  var w4 = vec4<u32>();
  var w5 = vec4<u32>();
  var w6 = vec4<u32>();
  var w7 = vec4<u32>();
  if (SUB > 1u) {
    w4 = load_w(lid, 4u, col_wg, k0 / 8u, end8, full);
    w5 = load_w(lid, 5u, col_wg, k0 / 8u, end8, full);
    w6 = load_w(lid, 6u, col_wg, k0 / 8u, end8, full);
    w7 = load_w(lid, 7u, col_wg, k0 / 8u, end8, full);
  }
  var a0 = load_a(lid, 0u, k0 / 4u, end4);
  var a1 = vec4f();
  var a2 = vec4f();
  var a3 = vec4f();
  var a4 = vec4f();
  var a5 = vec4f();
  var a6 = vec4f();
  var a7 = vec4f();
  if (AL > 1u) { a1 = load_a(lid, 1u, k0 / 4u, end4); }
  if (AL > 2u) { a2 = load_a(lid, 2u, k0 / 4u, end4); }
  if (AL > 3u) { a3 = load_a(lid, 3u, k0 / 4u, end4); }
  if (AL > 4u) { a4 = load_a(lid, 4u, k0 / 4u, end4); }
  if (AL > 5u) { a5 = load_a(lid, 5u, k0 / 4u, end4); }
  if (AL > 6u) { a6 = load_a(lid, 6u, k0 / 4u, end4); }
  if (AL > 7u) { a7 = load_a(lid, 7u, k0 / 4u, end4); }

  for (; k0 < k_end; k0 += KW) {
    put_w_chunk(lid, 0u, w0);
    put_w_chunk(lid, 1u, w1);
    put_w_chunk(lid, 2u, w2);
    put_w_chunk(lid, 3u, w3);
    if (SUB > 1u) {
      put_w_chunk(lid, 4u, w4);
      put_w_chunk(lid, 5u, w5);
      put_w_chunk(lid, 6u, w6);
      put_w_chunk(lid, 7u, w7);
    }
    put_a_share(lid, 0u, a0);
    if (AL > 1u) { put_a_share(lid, 1u, a1); }
    if (AL > 2u) { put_a_share(lid, 2u, a2); }
    if (AL > 3u) { put_a_share(lid, 3u, a3); }
    if (AL > 4u) { put_a_share(lid, 4u, a4); }
    if (AL > 5u) { put_a_share(lid, 5u, a5); }
    if (AL > 6u) { put_a_share(lid, 6u, a6); }
    if (AL > 7u) { put_a_share(lid, 7u, a7); }
    workgroupBarrier();
    // the next step's loads are in flight while this one is multiplied
    let kn = k0 + KW;
    if (kn < k_end) {
      full = wfull && kn + KW <= k_end;
      w0 = load_w(lid, 0u, col_wg, kn / 8u, end8, full);
      w1 = load_w(lid, 1u, col_wg, kn / 8u, end8, full);
      w2 = load_w(lid, 2u, col_wg, kn / 8u, end8, full);
      w3 = load_w(lid, 3u, col_wg, kn / 8u, end8, full);
      if (SUB > 1u) {
        w4 = load_w(lid, 4u, col_wg, kn / 8u, end8, full);
        w5 = load_w(lid, 5u, col_wg, kn / 8u, end8, full);
        w6 = load_w(lid, 6u, col_wg, kn / 8u, end8, full);
        w7 = load_w(lid, 7u, col_wg, kn / 8u, end8, full);
      }
      a0 = load_a(lid, 0u, kn / 4u, end4);
      if (AL > 1u) { a1 = load_a(lid, 1u, kn / 4u, end4); }
      if (AL > 2u) { a2 = load_a(lid, 2u, kn / 4u, end4); }
      if (AL > 3u) { a3 = load_a(lid, 3u, kn / 4u, end4); }
      if (AL > 4u) { a4 = load_a(lid, 4u, kn / 4u, end4); }
      if (AL > 5u) { a5 = load_a(lid, 5u, kn / 4u, end4); }
      if (AL > 6u) { a6 = load_a(lid, 6u, kn / 4u, end4); }
      if (AL > 7u) { a7 = load_a(lid, 7u, kn / 4u, end4); }
    }
    let kb = phase * KSP;
    let wb = frag * 16u * WP;
    for (var ks = 0u; ks < KSP; ks += 16u) {
      let r = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&ws_, wb + kb + ks, WP);
      let l0 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&as_, kb + ks, WP);
      acc0 = subgroupMatrixMultiplyAccumulate(l0, r, acc0);
      if (RT > 1u) {
        let l1 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&as_, 16u * WP + kb + ks, WP);
        acc1 = subgroupMatrixMultiplyAccumulate(l1, r, acc1);
      }
      if (RT > 2u) {
        let l2 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&as_, 32u * WP + kb + ks, WP);
        acc2 = subgroupMatrixMultiplyAccumulate(l2, r, acc2);
      }
      if (RT > 3u) {
        let l3 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&as_, 48u * WP + kb + ks, WP);
        acc3 = subgroupMatrixMultiplyAccumulate(l3, r, acc3);
      }
    }
    workgroupBarrier();
  }

  // one row tile at a time, the phases of each fragment meet in red
  let base = split * params.split_stride;
  emit(acc0, 0u, sg, lid, col_wg, base, spare);
  if (RT > 1u) { emit(acc1, 1u, sg, lid, col_wg, base, spare); }
  if (RT > 2u) { emit(acc2, 2u, sg, lid, col_wg, base, spare); }
  if (RT > 3u) { emit(acc3, 3u, sg, lid, col_wg, base, spare); }
}

// row tile t: every subgroup's accumulator into red, then rows 16 t .. 16 t + 15 of out (the
// sum of the phases; bias where k is not split). Called by the whole workgroup (barriers).
fn emit(acc: subgroup_matrix_result<f32, 16, 16>, t: u32, sg: u32, lid: u32, col_wg: u32, base: u32, spare: bool) {
  subgroupMatrixStore<row_major>(&red, sg * 256u, acc, 16u);
  workgroupBarrier();
  if (!spare) {
    for (var e = lid; e < 16u * TN; e += 128u) {
      let r = e / TN;
      let c = e % TN;
      let row = 16u * t + r;
      let col = col_wg + c;
      if (row < params.m && col < params.n) {
        var s = 0.0;
        for (var p = 0u; p < KPH; p++) { s += red[(p * CF + c / 16u) * 256u + r * 16u + c % 16u]; }
#if BIAS
        s += bias[params.col0 + col];
#endif
        out[base + row * params.ldo + params.col0 + col] = s;
      }
    }
  }
  workgroupBarrier();
}

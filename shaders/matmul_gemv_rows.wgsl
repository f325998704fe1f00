// matmul_gemv_rows: out = a @ w^T (+ bias) for 1 to 16 rows of a (decode), each weight read once
// for all rows. matmul_gemv.wgsl and matmul_gemv_sg.wgsl load a's 8 values per row for every 16
// bytes of weights in every lane, so their loads of a grow with the rows; here a lane keeps the
// same 8 k-elements of 4 columns (rows of w) in registers and multiplies them against every row,
// so each activation value loaded serves 4 columns, and lanes of different columns that load the
// same activations share one access (a broadcast).
//
// Layout of a workgroup of WG = G * SLOTS * KS threads: G lanes side by side along k (16 bytes
// each, so one column's G loads are 16 * G contiguous bytes), SLOTS column quads (4 * SLOTS
// columns per workgroup), and KS lane groups interleaved along k, so that the whole workgroup
// moves through k together (its activations stay in L1). Each lane issues the loads of U steps
// before it uses them. The G lanes of a quad meet by subgroup shuffles (SUBGROUPS; G must not
// exceed the subgroup size), else through workgroup memory (adapters without subgroups, such
// as llvmpipe); the KS groups meet in workgroup memory.
//
// Accumulators are 16 named vec4f (struct Acc: rows x the lane's 4 columns) and the weights two
// 4x4 matrices: earlier kernels' accumulator arrays indexed in loops were not kept in registers.
// Rows past ROWS are dropped at compile time (ROWS is a constant).
//
// STAGE_A: the workgroup's k-slice of every row of a is copied into workgroup memory once (one
// barrier) and read from there; the slice is the split's k-chunk, at most KC elements.
//
// Split k (grid = wgs_n column blocks x splits): split s sums k in [s * k_chunk, (s + 1) * k_chunk)
// and writes out[s * split_stride + ...]; the planner then binds a partial buffer [splits, m, n]
// as out (ldo = n, col0 = 0, no BIAS) and matmul_splitk_reduce.wgsl adds the splits and the bias.
//
// a: [m, k] f32 (m == ROWS <= 16); w: [n, k] f16 | bf16 | f32 with k % 8 == 0; bias: [ldo] f32;
// out: [m, ldo] f32, columns [col0, col0 + n) written (w may be a row block of a larger weight).
// W_TILED: w f16 in the webgpu backend's tiled layout (lib/common.wgsl w_chunk; k % 32 == 0).

#if SUBGROUPS
enable subgroups;
#endif

#include "lib/common.wgsl"

struct Params { m: u32, n: u32, k: u32, ldo: u32, col0: u32, wgs_n: u32, k_chunk: u32, split_stride: u32 }
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
override G: u32 = 8;
override SLOTS: u32 = 4;
override KS: u32 = 4;
override U: u32 = 1;
override KC: u32 = 8;
override WG: u32 = G * SLOTS * KS;

#if STAGE_A
// a[r, k0 + 4i .. k0 + 4i + 3] at sa[r * KC / 4 + i]
var<workgroup> sa: array<vec4f, ROWS * KC / 4u>;
#endif
#if SUBGROUPS
// each (k group, quad, row)'s sum over its G lanes
var<workgroup> red: array<vec4f, KS * SLOTS * ROWS>;
#else
// one row's accumulators of every thread at a time
var<workgroup> red: array<vec4f, WG>;
#endif

// out[r, c .. c + 3] partial sums of one lane: row r's four columns in r<r>
struct Acc {
  r0: vec4f, r1: vec4f, r2: vec4f, r3: vec4f, r4: vec4f, r5: vec4f, r6: vec4f, r7: vec4f,
  r8: vec4f, r9: vec4f, r10: vec4f, r11: vec4f, r12: vec4f, r13: vec4f, r14: vec4f, r15: vec4f,
}

// 8 k-elements of 4 columns, transposed: lo[e][c] = w[col + c, k0 + e], hi[e][c] = w[col + c, k0 + 4 + e]
struct Wq { lo: mat4x4f, hi: mat4x4f }

#if W_F32
fn load_q(col: u32, ch: u32, chunks: u32) -> Wq {
  let last = params.n - 1u;
  let i0 = 2u * (min(col, last) * chunks + ch);
  let i1 = 2u * (min(col + 1u, last) * chunks + ch);
  let i2 = 2u * (min(col + 2u, last) * chunks + ch);
  let i3 = 2u * (min(col + 3u, last) * chunks + ch);
  return Wq(transpose(mat4x4f(w[i0], w[i1], w[i2], w[i3])), transpose(mat4x4f(w[i0 + 1u], w[i1 + 1u], w[i2 + 1u], w[i3 + 1u])));
}
#else
fn widen2(u: u32) -> vec2f {
#if W_BF16
  return unpack_bf16x2(u);
#else
  return unpack2x16float(u);
#endif
}

fn load_q(col: u32, ch: u32, chunks: u32) -> Wq {
  let last = params.n - 1u;
  let u0 = w[w_chunk(min(col, last), ch, chunks)];
  let u1 = w[w_chunk(min(col + 1u, last), ch, chunks)];
  let u2 = w[w_chunk(min(col + 2u, last), ch, chunks)];
  let u3 = w[w_chunk(min(col + 3u, last), ch, chunks)];
  let lo = mat4x4f(vec4f(widen2(u0.x), widen2(u0.y)), vec4f(widen2(u1.x), widen2(u1.y)), vec4f(widen2(u2.x), widen2(u2.y)), vec4f(widen2(u3.x), widen2(u3.y)));
  let hi = mat4x4f(vec4f(widen2(u0.z), widen2(u0.w)), vec4f(widen2(u1.z), widen2(u1.w)), vec4f(widen2(u2.z), widen2(u2.w)), vec4f(widen2(u3.z), widen2(u3.w)));
  return Wq(transpose(lo), transpose(hi));
}
#endif

// a[r, 4i .. 4i + 3] (i counted from the start of the staged slice with STAGE_A)
fn xv(r: u32, i: u32) -> vec4f {
#if STAGE_A
  return sa[r * (KC / 4u) + i];
#else
  return a[r * (params.k / 4u) + i];
#endif
}

// one row's four columns over 8 k-elements: 32 FMAs in four chains, no other arithmetic
fn dot8(acc: vec4f, r: u32, i: u32, q: Wq) -> vec4f {
  let x0 = xv(r, i);
  let x1 = xv(r, i + 1u);
  var s = fma(vec4f(x0.x), q.lo[0], acc);
  s = fma(vec4f(x0.y), q.lo[1], s);
  s = fma(vec4f(x0.z), q.lo[2], s);
  s = fma(vec4f(x0.w), q.lo[3], s);
  s = fma(vec4f(x1.x), q.hi[0], s);
  s = fma(vec4f(x1.y), q.hi[1], s);
  s = fma(vec4f(x1.z), q.hi[2], s);
  return fma(vec4f(x1.w), q.hi[3], s);
}

// every row against one step's weights; i indexes a's vec4s of the step's chunk
fn mac(acc: Acc, i: u32, q: Wq) -> Acc {
  var t = acc;
  t.r0 = dot8(t.r0, 0u, i, q);
  if (ROWS > 1u) { t.r1 = dot8(t.r1, 1u, i, q); }
  if (ROWS > 2u) { t.r2 = dot8(t.r2, 2u, i, q); }
  if (ROWS > 3u) { t.r3 = dot8(t.r3, 3u, i, q); }
  if (ROWS > 4u) { t.r4 = dot8(t.r4, 4u, i, q); }
  if (ROWS > 5u) { t.r5 = dot8(t.r5, 5u, i, q); }
  if (ROWS > 6u) { t.r6 = dot8(t.r6, 6u, i, q); }
  if (ROWS > 7u) { t.r7 = dot8(t.r7, 7u, i, q); }
  if (ROWS > 8u) { t.r8 = dot8(t.r8, 8u, i, q); }
  if (ROWS > 9u) { t.r9 = dot8(t.r9, 9u, i, q); }
  if (ROWS > 10u) { t.r10 = dot8(t.r10, 10u, i, q); }
  if (ROWS > 11u) { t.r11 = dot8(t.r11, 11u, i, q); }
  if (ROWS > 12u) { t.r12 = dot8(t.r12, 12u, i, q); }
  if (ROWS > 13u) { t.r13 = dot8(t.r13, 13u, i, q); }
  if (ROWS > 14u) { t.r14 = dot8(t.r14, 14u, i, q); }
  if (ROWS > 15u) { t.r15 = dot8(t.r15, 15u, i, q); }
  return t;
}

fn acc_row(t: Acc, r: u32) -> vec4f {
  switch r {
    case 0u: { return t.r0; }
    case 1u: { return t.r1; }
    case 2u: { return t.r2; }
    case 3u: { return t.r3; }
    case 4u: { return t.r4; }
    case 5u: { return t.r5; }
    case 6u: { return t.r6; }
    case 7u: { return t.r7; }
    case 8u: { return t.r8; }
    case 9u: { return t.r9; }
    case 10u: { return t.r10; }
    case 11u: { return t.r11; }
    case 12u: { return t.r12; }
    case 13u: { return t.r13; }
    case 14u: { return t.r14; }
    default: { return t.r15; }
  }
}

// row r, columns col .. col + 3 of this split (bias only when k is not split)
fn store(split: u32, r: u32, col: u32, v: vec4f) {
  let base = split * params.split_stride + r * params.ldo + params.col0;
  for (var c = 0u; c < 4u; c++) {
    if (col + c < params.n) {
      var s = v[c];
#if BIAS
      s += bias[params.col0 + col + c];
#endif
      out[base + col + c] = s;
    }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = lid % G;
  let slot = (lid / G) % SLOTS;
  let kg = lid / (G * SLOTS);
  let wgi = wg_index(wid, nwg);
  let split = wgi / params.wgs_n;
  let col_wg = (wgi % params.wgs_n) * SLOTS * 4u;
  let col = col_wg + slot * 4u;
  let chunks = params.k / 8u;
  let ch0 = split * (params.k_chunk / 8u);
  let ch1 = min(ch0 + params.k_chunk / 8u, chunks);
#if STAGE_A
  let n4 = 2u * (ch1 - ch0);
  for (var i = lid; i < ROWS * n4; i += WG) {
    let r = i / n4;
    let j = i % n4;
    sa[r * (KC / 4u) + j] = a[r * (params.k / 4u) + 2u * ch0 + j];
  }
  workgroupBarrier();
  let xbase = ch0;
#else
  let xbase = 0u;
#endif

  var acc: Acc;
  let stride = KS * G;
  for (var ch = ch0 + kg * G + g; ch < ch1; ch += U * stride) {
    // the loads of U steps first, then their arithmetic
    let qa = load_q(col, ch, chunks);
    let chb = ch + stride;
    var qb = qa;
    if (U > 1u) { qb = load_q(col, min(chb, ch1 - 1u), chunks); }
    acc = mac(acc, 2u * (ch - xbase), qa);
    if (U > 1u && chb < ch1) { acc = mac(acc, 2u * (chb - xbase), qb); }
  }

#if SUBGROUPS
  for (var r = 0u; r < ROWS; r++) {
    var v = acc_row(acc, r);
    for (var o = 1u; o < G; o <<= 1u) { v += subgroupShuffleXor(v, o); }
    if (g == 0u) {
      if (KS == 1u) { store(split, r, col, v); } else { red[(kg * SLOTS + slot) * ROWS + r] = v; }
    }
  }
  if (KS > 1u) {
    workgroupBarrier();
    for (var i = lid; i < SLOTS * ROWS; i += WG) {
      let s = i / ROWS;
      let r = i % ROWS;
      var v = vec4f();
      for (var j = 0u; j < KS; j++) { v += red[(j * SLOTS + s) * ROWS + r]; }
      store(split, r, col_wg + 4u * s, v);
    }
  }
#else
  for (var r = 0u; r < ROWS; r++) {
    red[lid] = acc_row(acc, r);
    workgroupBarrier();
    if (lid < SLOTS) {
      var v = vec4f();
      for (var j = 0u; j < KS; j++) {
        for (var l = 0u; l < G; l++) { v += red[(j * SLOTS + lid) * G + l]; }
      }
      store(split, r, col_wg + 4u * lid, v);
    }
    workgroupBarrier();
  }
#endif
}

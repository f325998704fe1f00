// sgmat_staged_64x128: the production matmul_sgmat.wgsl before its 128 x 128 tile, kept for the
// lab comparisons (bench/lab.ts, bench/lab-sgmat.ts) and as the simpler version of the same
// staging: out = a @ w^T (+ bias) on the matrix units through WGSL subgroup matrices,
// f16 x f16 -> f32, 16 x 16 x 16. Launched as matmul_sgmat.wgsl is, with a padded to 64 rows.
//
// A workgroup of four subgroups owns a 64 x 128 block of out, each subgroup 32 x 64 as 2 x 4
// accumulators (6 matrix loads feed 8 multiplies per 16 of k). Per k-slice of BK the workgroup
// copies a [64, BK] tile of a and a [128, BK] tile of w into workgroup memory with 16-byte
// loads (rows padded by 8 halves against bank conflicts), and the matrix loads read from there.
// On an H200 this is 2-4x the kernel that loaded the matrices straight from storage
// (shaders/lab/sgmat_direct_64x128.wgsl; docs/perf-notes.md): a matrix load from storage cannot
// tell the driver that its rows are 16-byte aligned, one from workgroup memory can.
// a: [m_pad, k] f16, m_pad a multiple of 64 (zero rows past m, see cast_f16.wgsl); w: [n, k]
// f16; both bound as vec4<u32> (8 halves), so k % 8 == 0; k past the last whole BK and rows of w
// past n read as zeros. bias: [ldo] f32; out: [m, ldo] f32, columns [col0, col0 + n).
// Split k (SPLIT_K): where the tiles alone are too few to fill the GPU (decode batches of a
// few hundred rows), workgroup t works on k-chunk t / tiles and writes its partial product to
// out + chunk * split_stride (out is then a [splits, m, n] scratch) and
// matmul_splitk_reduce.wgsl sums the chunks and adds the bias.
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
#include "lib/common.wgsl"

struct Params { m: u32, n: u32, k: u32, ldo: u32, col0: u32, tiles_n: u32, tiles: u32, k_chunk: u32, split_stride: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;
#if BIAS
@group(0) @binding(3) var<storage, read> bias: array<f32>;
#endif
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// k-slice; the planner always sets it (32 measured best on an H200: 64 is 20% slower at 2048
// rows), so that it is a const here and can size the workgroup arrays
override BK: u32 = 32u;
const TM = 64u;
const TN = 128u;
const KP = BK + 8u;
const V = BK / 8u; // vec4<u32> per tile row
var<workgroup> as_: array<f16, TM * KP>;
var<workgroup> ws_: array<f16, TN * KP>;
var<workgroup> edge: array<f32, 4u * 256u>;

fn put8(dst: u32, v: vec4<u32>, is_w: bool) {
  let h0 = bitcast<vec2<f16>>(v.x);
  let h1 = bitcast<vec2<f16>>(v.y);
  let h2 = bitcast<vec2<f16>>(v.z);
  let h3 = bitcast<vec2<f16>>(v.w);
  if (is_w) {
    ws_[dst] = h0.x; ws_[dst + 1u] = h0.y; ws_[dst + 2u] = h1.x; ws_[dst + 3u] = h1.y;
    ws_[dst + 4u] = h2.x; ws_[dst + 5u] = h2.y; ws_[dst + 6u] = h3.x; ws_[dst + 7u] = h3.y;
  } else {
    as_[dst] = h0.x; as_[dst + 1u] = h0.y; as_[dst + 2u] = h1.x; as_[dst + 3u] = h1.y;
    as_[dst + 4u] = h2.x; as_[dst + 5u] = h2.y; as_[dst + 6u] = h3.x; as_[dst + 7u] = h3.y;
  }
}

fn store(acc: subgroup_matrix_result<f32, 16, 16>, base: u32, r: u32, c: u32, inside: bool, sg: u32, lane: u32, sgs: u32) {
  if (inside) {
    subgroupMatrixStore<row_major>(&out, base + r * params.ldo + params.col0 + c, acc, params.ldo);
  } else {
    subgroupMatrixStore<row_major>(&edge, sg * 256u, acc, 16u);
    workgroupBarrier();
    for (var e = lane; e < 256u; e += sgs) {
      let rr = r + e / 16u;
      let cc = c + e % 16u;
      if (rr < params.m && cc < params.n) { out[base + rr * params.ldo + params.col0 + cc] = edge[sg * 256u + e]; }
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgs: u32) {
  let t = wg_index(wid, nwg);
  let chunk = t / params.tiles;
  let tile = t % params.tiles;
  let base = chunk * params.split_stride;
  let k_begin = chunk * params.k_chunk;
  let k_end = min(params.k, k_begin + params.k_chunk);
  let tr = (tile / params.tiles_n) * TM;
  let tc = (tile % params.tiles_n) * TN;
  let sg = lid / sgs;
  let sr = (sg / 2u) * 32u; // this subgroup's rows and columns within the tile
  let sc = (sg % 2u) * 64u;
  let k8 = params.k / 8u;
  let end8 = k_end / 8u;
  var c00 = subgroup_matrix_result<f32, 16, 16>();
  var c01 = subgroup_matrix_result<f32, 16, 16>();
  var c02 = subgroup_matrix_result<f32, 16, 16>();
  var c03 = subgroup_matrix_result<f32, 16, 16>();
  var c10 = subgroup_matrix_result<f32, 16, 16>();
  var c11 = subgroup_matrix_result<f32, 16, 16>();
  var c12 = subgroup_matrix_result<f32, 16, 16>();
  var c13 = subgroup_matrix_result<f32, 16, 16>();
  for (var k0 = k_begin; k0 < k_end; k0 += BK) {
    let kv = k0 / 8u;
    for (var e = lid; e < TM * V; e += 128u) {
      let row = e / V;
      let cv = e % V;
      var v = vec4<u32>();
      if (kv + cv < end8) { v = a[(tr + row) * k8 + kv + cv]; }
      put8(row * KP + cv * 8u, v, false);
    }
    for (var e = lid; e < TN * V; e += 128u) {
      let row = e / V;
      let cv = e % V;
      var v = vec4<u32>();
      if (tc + row < params.n && kv + cv < end8) { v = w[(tc + row) * k8 + kv + cv]; }
      put8(row * KP + cv * 8u, v, true);
    }
    workgroupBarrier();
    for (var ks = 0u; ks < BK; ks += 16u) {
      let l0 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&as_, sr * KP + ks, KP);
      let l1 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&as_, (sr + 16u) * KP + ks, KP);
      let q0 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&ws_, sc * KP + ks, KP);
      let q1 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&ws_, (sc + 16u) * KP + ks, KP);
      let q2 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&ws_, (sc + 32u) * KP + ks, KP);
      let q3 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&ws_, (sc + 48u) * KP + ks, KP);
      c00 = subgroupMatrixMultiplyAccumulate(l0, q0, c00);
      c01 = subgroupMatrixMultiplyAccumulate(l0, q1, c01);
      c02 = subgroupMatrixMultiplyAccumulate(l0, q2, c02);
      c03 = subgroupMatrixMultiplyAccumulate(l0, q3, c03);
      c10 = subgroupMatrixMultiplyAccumulate(l1, q0, c10);
      c11 = subgroupMatrixMultiplyAccumulate(l1, q1, c11);
      c12 = subgroupMatrixMultiplyAccumulate(l1, q2, c12);
      c13 = subgroupMatrixMultiplyAccumulate(l1, q3, c13);
    }
    workgroupBarrier();
  }
  let inside = tr + TM <= params.m && tc + TN <= params.n;
  let r0 = tr + sr;
  let c0 = tc + sc;
  store(c00, base, r0, c0, inside, sg, lane, sgs);
  store(c01, base, r0, c0 + 16u, inside, sg, lane, sgs);
  store(c02, base, r0, c0 + 32u, inside, sg, lane, sgs);
  store(c03, base, r0, c0 + 48u, inside, sg, lane, sgs);
  store(c10, base, r0 + 16u, c0, inside, sg, lane, sgs);
  store(c11, base, r0 + 16u, c0 + 16u, inside, sg, lane, sgs);
  store(c12, base, r0 + 16u, c0 + 32u, inside, sg, lane, sgs);
  store(c13, base, r0 + 16u, c0 + 48u, inside, sg, lane, sgs);
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

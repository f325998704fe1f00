// matmul_sgmat: out = a @ w^T (+ bias) on the matrix units (tensor cores) through WGSL
// subgroup matrices, f16 x f16 -> f32, 16 x 16 x 16.
//
// A workgroup of four subgroups owns a 128 x 128 block of out, each subgroup 64 x 64 as 4 x 4
// accumulators: per 16 of k, 8 matrix loads feed 16 multiplies, where the 64 x 128 tile before it
// (shaders/lab/sgmat_staged_64x128.wgsl, 32 x 64 per subgroup) needed 6 loads for 8. The
// accumulators are sixteen named variables: an array of them was not kept in registers (15
// TFLOP/s, docs/perf-notes.md). Per k-slice of BK the workgroup copies a [128, BK] tile of a and
// a [128, BK] tile of w into workgroup memory with 16-byte loads (rows padded by 8 halves against
// bank conflicts) and the matrix loads read from there: a matrix load from storage cannot tell
// the driver that its rows are 16-byte aligned, one from workgroup memory can (2-4x, perf-notes).
// The next k-slice is loaded into registers while the matrix units work on this one; two
// workgroup buffers would not fit. On an H200, as the lab variant shaders/lab/sgmat_v2_128.wgsl
// (bench/lab-sgmat.ts, n x k = 4096 x 4096, one run): 86.5 TFLOP/s against 64.4 for the 64 x 128
// kernel at 256 rows (split k 8), 22.9 against 19.0 at 2048 rows (split k 2).
//
// a: [m_pad, k] f16, m_pad a multiple of 128 (zero rows past m, see cast_f16.wgsl); w: [n, k]
// f16; both bound as vec4<u32> (8 halves), so k % 8 == 0; k past the last whole BK and rows of w
// past n read as zeros. bias: [ldo] f32; out: [m, ldo] f32, columns [col0, col0 + n); rows past
// m and columns past n are never written (tiles that cross them store through workgroup memory).
// A_TILED / W_TILED: a / w in the tiled layout (tiles of 128 rows, each k / 32 slices of
// [128][32] halves: cast_f16.wgsl TILED, tile_weight.wgsl), k % 32 == 0.
// Split k: where the tiles alone are too few to fill the GPU (decode batches of a
// few hundred rows), workgroup t works on k-chunk t / tiles and writes its partial product to
// out + chunk * split_stride (out is then a [splits, m, n] scratch) and
// matmul_splitk_reduce.wgsl sums the chunks and adds the bias.
// Workgroup memory: 2 x 128 x 40 halves + 4 KiB = 24 KiB (WebGPU's default limit is 16 KiB; the
// device asks for the adapter's).
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

// k-slice: 32 (64 was slower with either tile, perf-notes and the lab's sgmat_v2_128_bk64, and
// needs 40 KiB here); the staging below assumes 4 chunks of 8 halves per tile row. The planner's
// split-k chunks are multiples of it (SG_BK).
const BK = 32u;
const TM = 128u;
const TN = 128u;
const KP = BK + 8u;
var<workgroup> as_: array<f16, TM * KP>;
var<workgroup> ws_: array<f16, TN * KP>;
var<workgroup> edge: array<f32, 4u * 256u>;

#include "lib/f16_tiles.wgsl"

// One 16 x 16 accumulator into out at rows r.., columns c.. of this tile's chunk. Where the tile
// crosses row m or column n (inside false, the same for the whole workgroup) it goes through this
// subgroup's 256 floats of edge and only the elements inside are copied out.
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
        @builtin(subgroup_size) sgs: u32) {
  let t = wg_index(wid, nwg);
  let chunk = t / params.tiles;
  let tile = t % params.tiles;
  let k_begin = chunk * params.k_chunk;
  // a grid of more than 65535 workgroups is rounded up to a rectangle (plan.ts grid): the extra
  // ones have no k-chunk (their loads are all guarded off and their loop is empty) and must not
  // store zeros over tile t % tiles. They return before the stores rather than here: with an
  // early return (and the guarded loads through helper functions, and the lane builtin in place
  // of lid % sgs) the kernel ran up to 18% slower in the lab (sgmat_op_* variants, perf-notes).
  let spare = k_begin >= params.k;
  let base = chunk * params.split_stride;
  let k_end = min(params.k, k_begin + params.k_chunk);
  let tr = (tile / params.tiles_n) * TM;
  let tc = (tile % params.tiles_n) * TN;
  let sg = lid / sgs;
  let lane = lid % sgs;
  let sr = (sg / 2u) * 64u; // this subgroup's rows and columns within the tile
  let sc = (sg % 2u) * 64u;
  let k8 = params.k / 8u;
  let end8 = k_end / 8u;

  // Staging: thread lid copies 16-byte chunk cq of tile rows row0, row0 + 32, row0 + 64 and
  // row0 + 96 of both a and w. The 32 lanes of a subgroup cover 8 rows x 4 chunks: 64 contiguous
  // bytes of each row per load (whole 32-byte sectors), 32 banks per workgroup store (put_a).
  let cq = (lid >> 3u) & 3u;
  let row0 = (lid >> 5u) * 8u + (lid & 7u);
  let d0 = row0 * KP + cq * 8u;
  let d1 = d0 + 32u * KP;
  let d2 = d0 + 64u * KP;
  let d3 = d0 + 96u * KP;
  // a has m_pad rows: every tile row exists. In the tiled layout (A_TILED, W_TILED) the slice at
  // chunk kv of a tile's row r is at tile * 128 * k8 + kv * 128 + r * 4: the 8 rows x 4 chunks of
  // a subgroup's load are 512 contiguous bytes (the kernel then ran 12-17% faster for each operand
  // tiled, 36-40% for both, at 2,048 rows on an H200 in the lab: sgmat_v5_*, docs/perf-notes.md)
#if A_TILED
  let ap0 = tr * k8 + row0 * 4u + cq;
  let ap1 = ap0 + 128u;
  let ap2 = ap0 + 256u;
  let ap3 = ap0 + 384u;
  let a_step = 128u;
#else
  let ap0 = (tr + row0) * k8 + cq;
  let ap1 = ap0 + 32u * k8;
  let ap2 = ap0 + 64u * k8;
  let ap3 = ap0 + 96u * k8;
  let a_step = 1u;
#endif
#if W_TILED
  let wp0 = tc * k8 + row0 * 4u + cq;
  let wp1 = wp0 + 128u;
  let wp2 = wp0 + 256u;
  let wp3 = wp0 + 384u;
  let w_step = 128u;
#else
  let wp0 = (tc + row0) * k8 + cq;
  let wp1 = wp0 + 32u * k8;
  let wp2 = wp0 + 64u * k8;
  let wp3 = wp0 + 96u * k8;
  let w_step = 1u;
#endif
  let wok0 = tc + row0 < params.n;
  let wok1 = tc + row0 + 32u < params.n;
  let wok2 = tc + row0 + 64u < params.n;
  let wok3 = tc + row0 + 96u < params.n;

  var c00 = subgroup_matrix_result<f32, 16, 16>();
  var c01 = subgroup_matrix_result<f32, 16, 16>();
  var c02 = subgroup_matrix_result<f32, 16, 16>();
  var c03 = subgroup_matrix_result<f32, 16, 16>();
  var c10 = subgroup_matrix_result<f32, 16, 16>();
  var c11 = subgroup_matrix_result<f32, 16, 16>();
  var c12 = subgroup_matrix_result<f32, 16, 16>();
  var c13 = subgroup_matrix_result<f32, 16, 16>();
  var c20 = subgroup_matrix_result<f32, 16, 16>();
  var c21 = subgroup_matrix_result<f32, 16, 16>();
  var c22 = subgroup_matrix_result<f32, 16, 16>();
  var c23 = subgroup_matrix_result<f32, 16, 16>();
  var c30 = subgroup_matrix_result<f32, 16, 16>();
  var c31 = subgroup_matrix_result<f32, 16, 16>();
  var c32 = subgroup_matrix_result<f32, 16, 16>();
  var c33 = subgroup_matrix_result<f32, 16, 16>();

  // the first k-slice; later ones are loaded one iteration ahead. A slice wholly inside k_end of
  // a tile wholly inside n (the same for the whole workgroup) loads without the per-chunk guards:
  // 11-17% faster in the lab (sgmat_v4_u against the op, H100, perf-notes), as the guarded
  // loads were not issued back to back
  let wfull = tc + TN <= params.n;
  var kv = k_begin / 8u;
  var va0: vec4<u32>;
  var va1: vec4<u32>;
  var va2: vec4<u32>;
  var va3: vec4<u32>;
  var vw0: vec4<u32>;
  var vw1: vec4<u32>;
  var vw2: vec4<u32>;
  var vw3: vec4<u32>;
  if (wfull && kv + BK / 8u <= end8) {
    va0 = a[ap0 + kv * a_step];
    va1 = a[ap1 + kv * a_step];
    va2 = a[ap2 + kv * a_step];
    va3 = a[ap3 + kv * a_step];
    vw0 = w[wp0 + kv * w_step];
    vw1 = w[wp1 + kv * w_step];
    vw2 = w[wp2 + kv * w_step];
    vw3 = w[wp3 + kv * w_step];
  } else {
    let kin = kv + cq < end8;
    va0 = vec4<u32>(); if (kin) { va0 = a[ap0 + kv * a_step]; }
    va1 = vec4<u32>(); if (kin) { va1 = a[ap1 + kv * a_step]; }
    va2 = vec4<u32>(); if (kin) { va2 = a[ap2 + kv * a_step]; }
    va3 = vec4<u32>(); if (kin) { va3 = a[ap3 + kv * a_step]; }
    vw0 = vec4<u32>(); if (kin && wok0) { vw0 = w[wp0 + kv * w_step]; }
    vw1 = vec4<u32>(); if (kin && wok1) { vw1 = w[wp1 + kv * w_step]; }
    vw2 = vec4<u32>(); if (kin && wok2) { vw2 = w[wp2 + kv * w_step]; }
    vw3 = vec4<u32>(); if (kin && wok3) { vw3 = w[wp3 + kv * w_step]; }
  }
  for (var k0 = k_begin; k0 < k_end; k0 += BK) {
    put_a(d0, va0, cq);
    put_a(d1, va1, cq);
    put_a(d2, va2, cq);
    put_a(d3, va3, cq);
    put_w(d0, vw0, cq);
    put_w(d1, vw1, cq);
    put_w(d2, vw2, cq);
    put_w(d3, vw3, cq);
    workgroupBarrier();
    // the next slice is in flight while the matrix units work on this one
    if (k0 + BK < k_end) {
      kv = (k0 + BK) / 8u;
      if (wfull && kv + BK / 8u <= end8) {
        va0 = a[ap0 + kv * a_step];
        va1 = a[ap1 + kv * a_step];
        va2 = a[ap2 + kv * a_step];
        va3 = a[ap3 + kv * a_step];
        vw0 = w[wp0 + kv * w_step];
        vw1 = w[wp1 + kv * w_step];
        vw2 = w[wp2 + kv * w_step];
        vw3 = w[wp3 + kv * w_step];
      } else {
        let kin = kv + cq < end8;
        va0 = vec4<u32>(); if (kin) { va0 = a[ap0 + kv * a_step]; }
        va1 = vec4<u32>(); if (kin) { va1 = a[ap1 + kv * a_step]; }
        va2 = vec4<u32>(); if (kin) { va2 = a[ap2 + kv * a_step]; }
        va3 = vec4<u32>(); if (kin) { va3 = a[ap3 + kv * a_step]; }
        vw0 = vec4<u32>(); if (kin && wok0) { vw0 = w[wp0 + kv * w_step]; }
        vw1 = vec4<u32>(); if (kin && wok1) { vw1 = w[wp1 + kv * w_step]; }
        vw2 = vec4<u32>(); if (kin && wok2) { vw2 = w[wp2 + kv * w_step]; }
        vw3 = vec4<u32>(); if (kin && wok3) { vw3 = w[wp3 + kv * w_step]; }
      }
    }
    for (var ks = 0u; ks < BK; ks += 16u) {
      let l0 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&as_, sr * KP + ks, KP);
      let l1 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&as_, (sr + 16u) * KP + ks, KP);
      let l2 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&as_, (sr + 32u) * KP + ks, KP);
      let l3 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&as_, (sr + 48u) * KP + ks, KP);
      let q0 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&ws_, sc * KP + ks, KP);
      c00 = subgroupMatrixMultiplyAccumulate(l0, q0, c00);
      c10 = subgroupMatrixMultiplyAccumulate(l1, q0, c10);
      c20 = subgroupMatrixMultiplyAccumulate(l2, q0, c20);
      c30 = subgroupMatrixMultiplyAccumulate(l3, q0, c30);
      let q1 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&ws_, (sc + 16u) * KP + ks, KP);
      c01 = subgroupMatrixMultiplyAccumulate(l0, q1, c01);
      c11 = subgroupMatrixMultiplyAccumulate(l1, q1, c11);
      c21 = subgroupMatrixMultiplyAccumulate(l2, q1, c21);
      c31 = subgroupMatrixMultiplyAccumulate(l3, q1, c31);
      let q2 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&ws_, (sc + 32u) * KP + ks, KP);
      c02 = subgroupMatrixMultiplyAccumulate(l0, q2, c02);
      c12 = subgroupMatrixMultiplyAccumulate(l1, q2, c12);
      c22 = subgroupMatrixMultiplyAccumulate(l2, q2, c22);
      c32 = subgroupMatrixMultiplyAccumulate(l3, q2, c32);
      let q3 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&ws_, (sc + 48u) * KP + ks, KP);
      c03 = subgroupMatrixMultiplyAccumulate(l0, q3, c03);
      c13 = subgroupMatrixMultiplyAccumulate(l1, q3, c13);
      c23 = subgroupMatrixMultiplyAccumulate(l2, q3, c23);
      c33 = subgroupMatrixMultiplyAccumulate(l3, q3, c33);
    }
    workgroupBarrier();
  }

  if (spare) { return; }
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
  store(c20, base, r0 + 32u, c0, inside, sg, lane, sgs);
  store(c21, base, r0 + 32u, c0 + 16u, inside, sg, lane, sgs);
  store(c22, base, r0 + 32u, c0 + 32u, inside, sg, lane, sgs);
  store(c23, base, r0 + 32u, c0 + 48u, inside, sg, lane, sgs);
  store(c30, base, r0 + 48u, c0, inside, sg, lane, sgs);
  store(c31, base, r0 + 48u, c0 + 16u, inside, sg, lane, sgs);
  store(c32, base, r0 + 48u, c0 + 32u, inside, sg, lane, sgs);
  store(c33, base, r0 + 48u, c0 + 48u, inside, sg, lane, sgs);
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

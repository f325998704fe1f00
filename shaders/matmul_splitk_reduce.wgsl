// matmul_splitk_reduce: out[r, col0 + c] = sum over s of part[s, r, c] (+ bias[col0 + c]), the
// second half of a split-k matmul launch (matmul_sgmat, matmul_gemv_rows, matmul_gemv_mma).
// part: [splits, m, n] f32; bias: [ldo] f32; out: [m, ldo] f32.
//
// It is a stream of splits x m x n floats in and m x n out, so it is bound by memory: each
// thread reads its element of every split with the loads of four splits issued together
// (a loop of one load and one add a split kept a single load in flight per thread).
// VEC4 (n, ldo and col0 multiples of 4): a thread owns four consecutive columns, read and
// written as 16 bytes.

#include "lib/common.wgsl"

struct Params { m: u32, n: u32, ldo: u32, col0: u32, splits: u32 }
@group(0) @binding(0) var<uniform> params: Params;
#if VEC4
@group(0) @binding(1) var<storage, read> part: array<vec4f>;
#else
@group(0) @binding(1) var<storage, read> part: array<f32>;
#endif
#if BIAS
@group(0) @binding(2) var<storage, read> bias: array<f32>;
#endif
#if VEC4
@group(0) @binding(3) var<storage, read_write> out: array<vec4f>;
#else
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
#endif

#if VEC4
const W = 4u;
#else
const W = 1u;
#endif

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wg_index(wid, nwg) * 256u + lid;
  // elements (or vec4s) per split
  let mn = params.m * params.n / W;
  if (i >= mn) { return; }
  var acc = part[i];
  var s = 1u;
  for (; s + 4u <= params.splits; s += 4u) {
    let p0 = part[s * mn + i];
    let p1 = part[(s + 1u) * mn + i];
    let p2 = part[(s + 2u) * mn + i];
    let p3 = part[(s + 3u) * mn + i];
    acc += (p0 + p1) + (p2 + p3);
  }
  for (; s < params.splits; s++) { acc += part[s * mn + i]; }
  let r = (i * W) / params.n;
  let c = (i * W) % params.n;
  let col = params.col0 + c;
#if BIAS
#if VEC4
  acc += vec4f(bias[col], bias[col + 1u], bias[col + 2u], bias[col + 3u]);
#else
  acc += bias[col];
#endif
#endif
  out[(r * params.ldo + col) / W] = acc;
}

// rms_norm: out = x / sqrt(mean(x^2) + eps) * weight, with an optional fused residual add
// (RESIDUAL): residual <- x + residual, then out = norm(residual) * weight.
// x, out, residual: [n, hidden] f32; weight: [hidden] f32 | f16 | bf16. IN_PLACE: out is x
// (bound once: WebGPU forbids two writable bindings of overlapping memory).
//
// One workgroup per row at a time. VEC4 (hidden % 4 == 0) moves 16 bytes per access. Each
// thread holds its VPT elements (or vec4s) of the row in registers: every load of the row is
// issued before the reduction waits, and the row is read from memory once. The planner sizes
// the workgroup to the row (WG * VPT * 4 >= hidden, VPT 4 where it can).
// SUBGROUPS: the sum of squares meets by subgroupAdd and one barrier over the subgroups'
// partials; without subgroups, in two levels of 16 through workgroup memory (two barriers).
// A grid smaller than n makes each workgroup stride over rows; PIPELINE then loads its next
// row before the current one's reduction waits (a second row of registers), so that the
// memory system is not idle while a workgroup reduces. The kernel before this one (one row
// per workgroup, always two levels of 16) is shaders/lab/rms_norm_v1.wgsl.

#if SUBGROUPS
enable subgroups;
#endif

#include "lib/common.wgsl"

#if VEC4
alias T = vec4f;
fn sq(v: vec4f) -> f32 { return dot(v, v); }
#else
alias T = f32;
fn sq(v: f32) -> f32 { return v * v; }
#endif

struct Params { n: u32, hidden: u32, eps: f32 }
@group(0) @binding(0) var<uniform> params: Params;
#if !IN_PLACE
@group(0) @binding(1) var<storage, read> x: array<T>;
#endif
#if W_F32
@group(0) @binding(2) var<storage, read> weight: array<T>;
#elif VEC4
@group(0) @binding(2) var<storage, read> weight: array<vec2u>;
#else
@group(0) @binding(2) var<storage, read> weight: array<u32>;
#endif
#if RESIDUAL
@group(0) @binding(3) var<storage, read_write> residual: array<T>;
#endif
@group(0) @binding(4) var<storage, read_write> out: array<T>;

override WG: u32 = 256;
override VPT: u32 = 4;
// two sets of partial sums, used by alternate rows: a workgroup that strides over rows
// writes the next row's partials while slower threads may still read this row's
const PARTS = 2u * WG;
var<workgroup> partial: array<f32, PARTS>;

fn x_at(i: u32) -> T {
#if IN_PLACE
  return out[i];
#else
  return x[i];
#endif
}

// weight element (or 4 elements) j
fn weight_at(j: u32) -> T {
#if W_F32
  return weight[j];
#elif VEC4
  let u = weight[j];
#if W_BF16
  return vec4f(unpack_bf16x2(u.x), unpack_bf16x2(u.y));
#else
  return vec4f(unpack2x16float(u.x), unpack2x16float(u.y));
#endif
#elif W_BF16
  return half_at(weight[j >> 1u], j, true);
#else
  return half_at(weight[j >> 1u], j, false);
#endif
}

// element (vec4) j of the row that starts at base, residual added
fn row_at(base: u32, j: u32) -> T {
#if RESIDUAL
  return x_at(base + j) + residual[base + j];
#else
  return x_at(base + j);
#endif
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32
#if SUBGROUPS
  , @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgs: u32
#endif
) {
  var row = wg_index(wid, nwg);
  if (row >= params.n) { return; }
  let stride = nwg.x * nwg.y;
#if VEC4
  let h = params.hidden / 4u;
#else
  let h = params.hidden;
#endif
  // the weights (the same for every row) and the first row, loaded before anything waits
  var wt: array<T, VPT>;
  var v: array<T, VPT>;
  for (var k = 0u; k < VPT; k++) {
    let j = lid + k * WG;
    if (j < h) {
      wt[k] = weight_at(j);
      v[k] = row_at(row * h, j);
    }
  }
  for (var parity = 0u; ; parity ^= 1u) {
    let base = row * h;
    let next = row + stride;
#if PIPELINE
    // the next row's loads go out now; they are not needed until after this row's barriers
    var nv: array<T, VPT>;
    if (next < params.n) {
      for (var k = 0u; k < VPT; k++) {
        let j = lid + k * WG;
        if (j < h) { nv[k] = row_at(next * h, j); }
      }
    }
#endif
    var ss = 0.0;
    for (var k = 0u; k < VPT; k++) {
      let j = lid + k * WG;
      if (j < h) {
#if RESIDUAL
        residual[base + j] = v[k];
#endif
        ss += sq(v[k]);
      }
    }
    let p0 = parity * WG;
#if SUBGROUPS
    ss = subgroupAdd(ss);
    if (lane == 0u) { partial[p0 + lid / sgs] = ss; }
    workgroupBarrier();
    var total = 0.0;
    for (var i = 0u; i < (WG + sgs - 1u) / sgs; i++) { total += partial[p0 + i]; }
#else
    partial[p0 + lid] = ss;
    workgroupBarrier();
    if (lid % 16u == 0u) {
      for (var i = 1u; i < 16u && lid + i < WG; i++) { ss += partial[p0 + lid + i]; }
      partial[p0 + lid] = ss;
    }
    workgroupBarrier();
    var total = 0.0;
    for (var i = 0u; i < WG; i += 16u) { total += partial[p0 + i]; }
#endif
    let scale = inverseSqrt(total / f32(params.hidden) + params.eps);
    for (var k = 0u; k < VPT; k++) {
      let j = lid + k * WG;
      if (j < h) { out[base + j] = v[k] * scale * wt[k]; }
    }
    if (next >= params.n) { break; }
    row = next;
#if PIPELINE
    v = nv;
#else
    for (var k = 0u; k < VPT; k++) {
      let j = lid + k * WG;
      if (j < h) { v[k] = row_at(row * h, j); }
    }
#endif
  }
}

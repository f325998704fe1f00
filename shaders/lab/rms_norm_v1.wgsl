// LAB COPY: shaders/rms_norm.wgsl as committed on main at bd6a272, before branch rowops. The lab
// (bench/lab-rowops.ts) times it beside its successor; PARALLM_ROWOPS=old plans it in production
// for A/B runs (src/device/webgpu/rowops.ts). Do not edit: it is the baseline.
//
// rms_norm: out = x / sqrt(mean(x^2) + eps) * weight, with an optional fused residual add
// (RESIDUAL): residual <- x + residual, then out = norm(residual) * weight.
// x, out, residual: [n, hidden] f32; weight: [hidden] f32 | f16 | bf16. IN_PLACE: out is x
// (bound once: WebGPU forbids two writable bindings of overlapping memory).
// One workgroup per row. VEC4 (hidden % 4 == 0) moves 16 bytes per access: on an H200 the
// scalar version reached 0.8 TB/s at 2048 rows of 4096, this one 1.3 TB/s (docs/perf-notes.md).
// Each thread holds its VPT elements (or vec4s) of the row in registers: every load of the row
// is issued before the reduction, the row is read from memory once (not re-read for the
// output), and the sum of squares meets in two levels of 16 (two barriers, not a tree of
// log2(WG)). The planner sets VPT = ceil(elements / WG).

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
var<workgroup> partial: array<f32, WG>;

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

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wg_index(wid, nwg);
  if (row >= params.n) { return; }
#if VEC4
  let h = params.hidden / 4u;
#else
  let h = params.hidden;
#endif
  let base = row * h;
  // the row and the weights it meets, loaded before the reduction waits on them
  var v: array<T, VPT>;
  var wt: array<T, VPT>;
  for (var k = 0u; k < VPT; k++) {
    let j = lid + k * WG;
    if (j < h) {
      wt[k] = weight_at(j);
#if RESIDUAL
      v[k] = x_at(base + j) + residual[base + j];
#else
      v[k] = x_at(base + j);
#endif
    }
  }
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
  partial[lid] = ss;
  workgroupBarrier();
  if (lid % 16u == 0u) {
    for (var i = 1u; i < 16u && lid + i < WG; i++) { ss += partial[lid + i]; }
    partial[lid] = ss;
  }
  workgroupBarrier();
  var total = 0.0;
  for (var i = 0u; i < WG; i += 16u) { total += partial[i]; }
  let scale = inverseSqrt(total / f32(params.hidden) + params.eps);
  for (var k = 0u; k < VPT; k++) {
    let j = lid + k * WG;
    if (j < h) { out[base + j] = v[k] * scale * wt[k]; }
  }
}

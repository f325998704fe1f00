// rms_norm: out = x / sqrt(mean(x^2) + eps) * weight, with an optional fused residual add
// (RESIDUAL): residual <- x + residual, then out = norm(residual) * weight.
// x, out, residual: [n, hidden] f32; weight: [hidden] f32 | f16 | bf16. IN_PLACE: out is x
// (bound once: WebGPU forbids two writable bindings of overlapping memory).
// One workgroup per row; each thread keeps its strided slice, reduction in workgroup memory.

#include "lib/common.wgsl"

struct Params { n: u32, hidden: u32, eps: f32 }
@group(0) @binding(0) var<uniform> params: Params;
#if !IN_PLACE
@group(0) @binding(1) var<storage, read> x: array<f32>;
#endif
#if W_F32
@group(0) @binding(2) var<storage, read> weight: array<f32>;
#else
@group(0) @binding(2) var<storage, read> weight: array<u32>;
#endif
#if RESIDUAL
@group(0) @binding(3) var<storage, read_write> residual: array<f32>;
#endif
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

override WG: u32 = 256;
var<workgroup> partial: array<f32, WG>;

fn x_at(i: u32) -> f32 {
#if IN_PLACE
  return out[i];
#else
  return x[i];
#endif
}

fn weight_at(j: u32) -> f32 {
#if W_F32
  return weight[j];
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
  let h = params.hidden;
  let base = row * h;
  var ss = 0.0;
  for (var j = lid; j < h; j += WG) {
#if RESIDUAL
    let v = x_at(base + j) + residual[base + j];
    residual[base + j] = v;
#else
    let v = x_at(base + j);
#endif
    ss += v * v;
  }
  partial[lid] = ss;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  let scale = inverseSqrt(partial[0] / f32(h) + params.eps);
  for (var j = lid; j < h; j += WG) {
    // each thread re-reads only the elements it wrote above, so no barrier is needed
#if RESIDUAL
    let v = residual[base + j];
#else
    let v = x_at(base + j);
#endif
    out[base + j] = v * scale * weight_at(j);
  }
}

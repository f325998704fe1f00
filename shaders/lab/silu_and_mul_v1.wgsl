// LAB COPY: shaders/silu_and_mul.wgsl as committed on main at bd6a272, before branch rowops. The lab
// (bench/lab-rowops.ts) times it beside its successor; PARALLM_ROWOPS=old plans it in production
// for A/B runs (src/device/webgpu/rowops.ts). Do not edit: it is the baseline.
//
// silu_and_mul: out = silu(gate) * up, gate = x[:, :inter], up = x[:, inter:]
// x: [n, 2 * inter] f32; out: [n, inter] f32. One thread per output element, or per four
// with VEC4 (inter % 4 == 0): 16-byte accesses doubled the bandwidth on an H200.

#include "lib/common.wgsl"

#if VEC4
alias T = vec4f;
#else
alias T = f32;
#endif

// inter in units of T
struct Params { n: u32, inter: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> out: array<T>;

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = wg_index(wid, nwg) * WG + lid;
  if (idx >= params.n * params.inter) { return; }
  let t = idx / params.inter;
  let j = idx % params.inter;
  let g = x[t * 2u * params.inter + j];
  let u = x[t * 2u * params.inter + params.inter + j];
  out[idx] = g / (1.0 + exp(-g)) * u;
}

// LAB COPY: shaders/rope.wgsl as committed on main at bd6a272, before branch rowops. The lab
// (bench/lab-rowops.ts) times it beside its successor; PARALLM_ROWOPS=old plans it in production
// for A/B runs (src/device/webgpu/rowops.ts). Do not edit: it is the baseline.
//
// rope: rotary embedding in place on the first num_heads heads of each row.
// neox/LLaMA layout rotates pairs (i, i + rot/2); INTERLEAVED (GPT-J) rotates (2i, 2i + 1).
// x: [n, width] f32; positions: [n] i32; cos_sin: [max_pos, rot] f32, each position's cos then
// sin, computed on the host in float64 (rope_theta and rope_scaling folded in): the GPU's own
// sin/cos need only be accurate to 2^-11 in Vulkan, which drifted a 7B model's logits by 7% at
// 300 tokens on an H200. One thread per (token, head, pair); VEC4 (neox layout with width,
// head_size and half_rot multiples of 4): one thread per four pairs, 16-byte accesses.

#include "lib/common.wgsl"

struct Params { n: u32, width: u32, num_heads: u32, head_size: u32, half_rot: u32, max_pos: u32 }
@group(0) @binding(0) var<uniform> params: Params;
#if VEC4
@group(0) @binding(1) var<storage, read_write> x: array<vec4f>;
#else
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
#endif
@group(0) @binding(2) var<storage, read> positions: array<i32>;
#if VEC4
@group(0) @binding(3) var<storage, read> cos_sin: array<vec4f>;
#else
@group(0) @binding(3) var<storage, read> cos_sin: array<f32>;
#endif

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = wg_index(wid, nwg) * WG + lid;
#if VEC4
  // in units of four: h4 = half_rot / 4 groups of pairs per head
  let h4 = params.half_rot / 4u;
  let per_token4 = params.num_heads * h4;
  if (idx >= params.n * per_token4) { return; }
  let t4 = idx / per_token4;
  let r4 = idx % per_token4;
  let head4 = r4 / h4;
  let g = r4 % h4;
  let pos4 = min(u32(max(positions[t4], 0)), params.max_pos - 1u);
  let row4 = pos4 * 2u * h4;
  let c4 = cos_sin[row4 + g];
  let s4 = cos_sin[row4 + h4 + g];
  let i04 = (t4 * params.width + head4 * params.head_size) / 4u + g;
  let i14 = i04 + h4;
  let a4 = x[i04];
  let b4 = x[i14];
  x[i04] = a4 * c4 - b4 * s4;
  x[i14] = b4 * c4 + a4 * s4;
#else
  let per_token = params.num_heads * params.half_rot;
  if (idx >= params.n * per_token) { return; }
  let t = idx / per_token;
  let r = idx % per_token;
  let head = r / params.half_rot;
  let i = r % params.half_rot;
  // a position past the table (the host validates positions) reads its last row, not other memory
  let pos = min(u32(max(positions[t], 0)), params.max_pos - 1u);
  let row = pos * 2u * params.half_rot;
  let c = cos_sin[row + i];
  let s = cos_sin[row + params.half_rot + i];
  let base = t * params.width + head * params.head_size;
#if INTERLEAVED
  let i0 = base + 2u * i;
  let i1 = i0 + 1u;
#else
  let i0 = base + i;
  let i1 = base + i + params.half_rot;
#endif
  let a = x[i0];
  let b = x[i1];
  x[i0] = a * c - b * s;
  x[i1] = b * c + a * s;
#endif
}

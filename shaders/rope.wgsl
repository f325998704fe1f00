// rope: rotary embedding in place on the first num_heads heads of each row.
// neox/LLaMA layout rotates pairs (i, i + rot/2); INTERLEAVED (GPT-J) rotates (2i, 2i + 1).
// x: [n, width] f32; positions: [n] i32; cos_sin: [max_pos, rot] f32, each position's cos then
// sin, computed on the host in float64 (rope_theta and rope_scaling folded in): the GPU's own
// sin/cos need only be accurate to 2^-11 in Vulkan, which drifted a 7B model's logits by 7% at
// 300 tokens on an H200.
//
// Tokens on grid y, heads on grid x: no division of a flat index. A thread owns one group of
// pairs g (VEC4, neox layout with width, head_size and half_rot multiples of 4: four pairs,
// 16-byte accesses; else one pair) of IPT heads of a token, HPW = WG / GQ heads apart: it reads
// the token's cos and sin for g once and keeps the 2 * IPT loads of x in flight before it waits
// on them. With LLaMA's 64 q+k heads of 128 (HQ = 16 vec4 groups per half) one workgroup of 256
// threads with IPT 4 covers a token. The kernel before this one (one thread per group of pairs
// over a flat index, divisions per thread) is shaders/lab/rope_v1.wgsl.

#include "lib/common.wgsl"

#if VEC4
alias T = vec4f;
#else
alias T = f32;
#endif

struct Params { n: u32, width: u32, num_heads: u32, head_size: u32, half_rot: u32, max_pos: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> x: array<T>;
@group(0) @binding(2) var<storage, read> positions: array<i32>;
@group(0) @binding(3) var<storage, read> cos_sin: array<T>;

override WG: u32 = 256;
// groups of pairs in half a rotary dim: half_rot / 4 with VEC4, else half_rot
override HQ: u32 = 16;
// heads per thread
override IPT: u32 = 4;
// groups a workgroup covers at once (all of a head's when they fit), heads it covers at once
const GQ = min(HQ, WG);
const HPW = WG / GQ;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let slot = lid / GQ;
  if (slot >= HPW) { return; } // WG not a multiple of GQ: spare threads (no barriers here)
  let head0 = wid.x * HPW * IPT + slot;
#if VEC4
  let width = params.width / 4u;
  let head_size = params.head_size / 4u;
#else
  let width = params.width;
  let head_size = params.head_size;
#endif
  for (var t = wid.y; t < params.n; t += nwg.y) {
    for (var g = lid % GQ; g < HQ; g += GQ) {
      // x first: these loads do not wait on the position
      var a: array<T, IPT>;
      var b: array<T, IPT>;
      var i0: array<u32, IPT>;
      for (var k = 0u; k < IPT; k++) {
        let hd = head0 + k * HPW;
        if (hd < params.num_heads) {
          let base = t * width + hd * head_size;
#if INTERLEAVED
          i0[k] = base + 2u * g;
          a[k] = x[i0[k]];
          b[k] = x[i0[k] + 1u];
#else
          i0[k] = base + g;
          a[k] = x[i0[k]];
          b[k] = x[i0[k] + HQ];
#endif
        }
      }
      // a position past the table (the host validates positions) reads its last row, not other memory
      let pos = min(u32(max(positions[t], 0)), params.max_pos - 1u);
      let row = pos * 2u * HQ;
      let c = cos_sin[row + g];
      let s = cos_sin[row + HQ + g];
      for (var k = 0u; k < IPT; k++) {
        if (head0 + k * HPW < params.num_heads) {
#if INTERLEAVED
          x[i0[k]] = a[k] * c - b[k] * s;
          x[i0[k] + 1u] = b[k] * c + a[k] * s;
#else
          x[i0[k]] = a[k] * c - b[k] * s;
          x[i0[k] + HQ] = b[k] * c + a[k] * s;
#endif
        }
      }
    }
  }
}

// silu_and_mul: out = silu(gate) * up, gate = x[:, :inter], up = x[:, inter:]
// x: [n, 2 * inter] f32; out: [n, inter] f32. VEC4 (inter % 4 == 0): 16-byte accesses.
//
// Rows on grid y, columns on grid x: no division of a flat index. Each thread takes U columns
// (vec4s) WG apart and issues its 2U loads before it computes. A grid smaller than the
// problem makes workgroups stride over column chunks (x) and rows (y). NOEXP (lab ablation
// only, wrong output): out = gate * up, to see what the exponential costs. The kernel before
// this one (one thread per column over a flat index) is shaders/lab/silu_and_mul_v1.wgsl.

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
override U: u32 = 2;

fn silu_mul(g: T, u: T) -> T {
#if NOEXP
  return g * u;
#else
  return g / (1.0 + exp(-g)) * u;
#endif
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let inter = params.inter;
  for (var row = wid.y; row < params.n; row += nwg.y) {
    let xb = row * 2u * inter;
    let ob = row * inter;
    for (var j0 = wid.x * WG * U + lid; j0 < inter; j0 += nwg.x * WG * U) {
      var g: array<T, U>;
      var u: array<T, U>;
      for (var k = 0u; k < U; k++) {
        let j = j0 + k * WG;
        if (j < inter) {
          g[k] = x[xb + j];
          u[k] = x[xb + inter + j];
        }
      }
      for (var k = 0u; k < U; k++) {
        let j = j0 + k * WG;
        if (j < inter) { out[ob + j] = silu_mul(g[k], u[k]); }
      }
    }
  }
}

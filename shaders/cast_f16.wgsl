// cast_f16: out = f16(x), rows past m (up to the padded row count) set to zero. Feeds the
// subgroup-matrix matmul, whose operands are f16 and whose tiles read whole blocks of rows
// (SG_TILE_M, 128 in matmul_sgmat.wgsl).
// x: [m, k] f32 with k % 4 == 0; out: [m_pad, k] f16 (as u32 pairs, four halves per vec2u).
// TILED: out in matmul_sgmat's A_TILED layout, tiles of 128 rows each stored as k / 32 slices of
// [128 rows][32 halves] (k % 32 == 0, m_pad % 128 == 0); thread o writes out[o] (contiguous
// stores) and reads the 16 bytes of x that belong there.

#include "lib/common.wgsl"

struct Params { m: u32, k4: u32, m_pad: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> out: array<vec2u>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wg_index(wid, nwg) * 256u + lid;
  if (i >= params.m_pad * params.k4) { return; }
#if TILED
  let per_tile = 128u * params.k4;
  let rem = i % per_tile;
  let row = (i / per_tile) * 128u + (rem % 1024u) / 8u;
  let src = row * params.k4 + (rem / 1024u) * 8u + rem % 8u;
  let inside = row < params.m;
#else
  let src = i;
  let inside = i < params.m * params.k4;
#endif
  var v = vec4f(0.0);
  if (inside) { v = clamp(x[src], vec4f(-65504.0), vec4f(65504.0)); }
  out[i] = vec2u(pack2x16float(v.xy), pack2x16float(v.zw));
}

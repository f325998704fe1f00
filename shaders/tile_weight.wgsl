// tile_weight: a row-major f16 weight [n, k] into the webgpu backend's packed layout (tiles of 128
// rows, each stored as k / 32 slices of [128 rows][32 halves]; lib/common.wgsl w_chunk, and
// WebGpuDevice.packWeight). Thread o writes 16-byte chunk o of out (contiguous stores) from the
// chunk of w that belongs there; rows past n (the last tile's padding) are zeros.
// w: [n, k] f16 as vec4<u32> (k % 32 == 0); out: [ceil(n / 128) * 128, k] f16.

#include "lib/common.wgsl"

struct Params { n: u32, chunks: u32, total: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<u32>>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let o = wg_index(wid, nwg) * 256u + lid;
  if (o >= params.total) { return; }
  let per_tile = 128u * params.chunks;
  let rem = o % per_tile;
  let row = (o / per_tile) * 128u + (rem % 512u) / 4u;
  let ch = (rem / 512u) * 4u + rem % 4u;
  var v = vec4<u32>();
  if (row < params.n) { v = w[row * params.chunks + ch]; }
  out[o] = v;
}

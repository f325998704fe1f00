// copy: out = x. The bandwidth ceiling of the op benchmark: every byte read once and
// written once with 16-byte accesses, grid-stride.
// x, out: [n] f32 with n % 4 == 0, read as vec4

struct Params { n4: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4f>;

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let stride = nwg.x * nwg.y * WG;
  let first = gid.x + gid.y * nwg.x * WG;
  for (var i = first; i < params.n4; i += stride) {
    out[i] = x[i];
  }
}

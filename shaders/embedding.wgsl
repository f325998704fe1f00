// embedding: out[i, :] = table[ids[i], :]
// ids: [n] i32; table: [vocab, hidden] f32 | f16 | bf16 (16-bit types as u32 pairs, hidden even);
// out: [n, hidden] f32. One workgroup per token. A table larger than one binding comes as
// row blocks, one dispatch each: `table` holds rows [row0, row0 + rows) of the vocabulary.

#include "lib/common.wgsl"

struct Params { n: u32, hidden: u32, vocab: u32, row0: u32, rows: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
#if W_F32
@group(0) @binding(2) var<storage, read> table: array<f32>;
#else
@group(0) @binding(2) var<storage, read> table: array<u32>;
#endif
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wg_index(wid, nwg);
  if (t >= params.n) { return; }
  let id = ids[t];
  let h = params.hidden;
  if (id < 0 || u32(id) >= params.vocab) {
    // an id outside the vocabulary (the host validates ids) gives zeros, not another tensor's memory
    if (params.row0 == 0u) {
      for (var j = lid; j < h; j += WG) { out[t * h + j] = 0.0; }
    }
    return;
  }
  if (u32(id) < params.row0 || u32(id) >= params.row0 + params.rows) { return; }
  let row = u32(id) - params.row0;
#if W_F32
  for (var j = lid; j < h; j += WG) {
    out[t * h + j] = table[row * h + j];
  }
#else
  let half_h = h / 2u;
  for (var j = lid; j < half_h; j += WG) {
#if W_BF16
    let v = unpack_bf16x2(table[row * half_h + j]);
#else
    let v = unpack2x16float(table[row * half_h + j]);
#endif
    out[t * h + 2u * j] = v.x;
    out[t * h + 2u * j + 1u] = v.y;
  }
#endif
}

// Shared helpers. Included with `#include "lib/common.wgsl"`.

// Linear index of this workgroup in a grid of up to 65535 x 65535 (the per-dimension limit).
fn wg_index(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.x + wid.y * nwg.x;
}

// Two bfloat16 values packed in a u32 (low half first) widened to f32: a bf16 is the top
// half of an f32, so widening is a shift.
fn unpack_bf16x2(u: u32) -> vec2f {
  return vec2f(bitcast<f32>(u << 16u), bitcast<f32>(u & 0xffff0000u));
}

// Element i of a packed 16-bit array held as u32 pairs.
fn half_at(packed: u32, i: u32, is_bf16: bool) -> f32 {
  let v = select(unpack2x16float(packed), unpack_bf16x2(packed), is_bf16);
  return select(v.x, v.y, (i & 1u) == 1u);
}

// Index of 16-byte chunk ch (halves 8ch .. 8ch + 7) of row `row` of an f16 weight of `chunks`
// chunks a row (k / 8). Row-major: row * chunks + ch. With W_TILED, the webgpu backend's packed
// layout (WebGpuDevice.packWeight): tiles of 128 rows, each stored as k / 32 slices of
// [128 rows][32 halves], so that a k-slice of a tile is one contiguous 8 KiB block.
fn w_chunk(row: u32, ch: u32, chunks: u32) -> u32 {
#if W_TILED
  return (row >> 7u) * 128u * chunks + (ch >> 2u) * 512u + (row & 127u) * 4u + (ch & 3u);
#else
  return row * chunks + ch;
#endif
}

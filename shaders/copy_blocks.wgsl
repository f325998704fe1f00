// copy_blocks: block pairs[i].y <- block pairs[i].x in both caches (copy-on-write of a shared
// last block). WebGPU cannot copy a buffer into itself, so a kernel moves the words.
// key_cache, value_cache: [num_blocks, block_size, num_kv_heads, head_size] f16 | f32, seen as
// u32 words (a block is a whole number of words: head_size is even); pairs: [m, 2] i32.
// One workgroup per pair.

#include "lib/common.wgsl"

struct Params { m: u32, block_words: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> key_cache: array<u32>;
@group(0) @binding(2) var<storage, read_write> value_cache: array<u32>;
@group(0) @binding(3) var<storage, read> pairs: array<vec2i>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wg_index(wid, nwg);
  if (i >= params.m) { return; }
  let p = pairs[i];
  let src = u32(p.x) * params.block_words;
  let dst = u32(p.y) * params.block_words;
  for (var w = lid; w < params.block_words; w += 256u) {
    key_cache[dst + w] = key_cache[src + w];
    value_cache[dst + w] = value_cache[src + w];
  }
}

// copy_blocks: block pairs[i].y <- block pairs[i].x in both caches (copy-on-write of a shared
// last block). WebGPU cannot copy a buffer into itself, so a kernel moves the words.
// key_cache, value_cache: [num_blocks, block_size, num_kv_heads, head_size] f16 | f32, seen as
// u32 words (a block is a whole number of words: head_size is even); pairs: [m, 2] i32.
// A pool split into parts (src/device/kv-pool.ts; KV_PARTS_2, _3, _4: at least that many) binds
// part p as key_cache_p / value_cache_p (part 0 as key_cache); block b lies in part
// b / part_blocks, and source and destination may lie in different parts.
// One workgroup per pair.

#include "lib/common.wgsl"

struct Params {
  m: u32,
  block_words: u32,
#if KV_PARTS_2
  part_blocks: u32,
#endif
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> key_cache: array<u32>;
@group(0) @binding(2) var<storage, read_write> value_cache: array<u32>;
@group(0) @binding(3) var<storage, read> pairs: array<vec2i>;
#if KV_PARTS_2
@group(0) @binding(10) var<storage, read_write> key_cache_1: array<u32>;
@group(0) @binding(11) var<storage, read_write> value_cache_1: array<u32>;
#endif
#if KV_PARTS_3
@group(0) @binding(12) var<storage, read_write> key_cache_2: array<u32>;
@group(0) @binding(13) var<storage, read_write> value_cache_2: array<u32>;
#endif
#if KV_PARTS_4
@group(0) @binding(14) var<storage, read_write> key_cache_3: array<u32>;
@group(0) @binding(15) var<storage, read_write> value_cache_3: array<u32>;
#endif

#if KV_PARTS_2
// word i of part `part`'s K and V pools (WGSL cannot index an array of bindings: a switch)
fn load(part: u32, i: u32) -> vec2u {
  switch part {
    case 1u: { return vec2u(key_cache_1[i], value_cache_1[i]); }
#if KV_PARTS_3
    case 2u: { return vec2u(key_cache_2[i], value_cache_2[i]); }
#endif
#if KV_PARTS_4
    case 3u: { return vec2u(key_cache_3[i], value_cache_3[i]); }
#endif
    default: { return vec2u(key_cache[i], value_cache[i]); }
  }
}

fn store(part: u32, i: u32, kv: vec2u) {
  switch part {
    case 1u: { key_cache_1[i] = kv.x; value_cache_1[i] = kv.y; }
#if KV_PARTS_3
    case 2u: { key_cache_2[i] = kv.x; value_cache_2[i] = kv.y; }
#endif
#if KV_PARTS_4
    case 3u: { key_cache_3[i] = kv.x; value_cache_3[i] = kv.y; }
#endif
    default: { key_cache[i] = kv.x; value_cache[i] = kv.y; }
  }
}
#endif

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wg_index(wid, nwg);
  if (i >= params.m) { return; }
  let p = pairs[i];
#if KV_PARTS_2
  let src_part = u32(p.x) / params.part_blocks;
  let dst_part = u32(p.y) / params.part_blocks;
  let src = (u32(p.x) - src_part * params.part_blocks) * params.block_words;
  let dst = (u32(p.y) - dst_part * params.part_blocks) * params.block_words;
  for (var w = lid; w < params.block_words; w += 256u) { store(dst_part, dst + w, load(src_part, src + w)); }
#else
  let src = u32(p.x) * params.block_words;
  let dst = u32(p.y) * params.block_words;
  for (var w = lid; w < params.block_words; w += 256u) {
    key_cache[dst + w] = key_cache[src + w];
    value_cache[dst + w] = value_cache[src + w];
  }
#endif
}

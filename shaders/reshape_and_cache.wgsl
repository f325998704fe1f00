// reshape_and_cache: writes each new token's key and value rows into its slot of the paged
// cache, slot = block * block_size + offset; a negative slot (padding) is skipped, and so is a
// slot past the pool (the host owns slot validity; this only keeps the write inside the pool).
// key, value: [n, num_kv_heads * head_size] f32;
// key_cache, value_cache: [num_blocks, block_size, num_kv_heads, head_size] f32, or f16 stored
// as packed u32 pairs (KV_F16; head_size is even, so a pair never straddles two rows);
// slot_mapping: [n] i32.
// A slot's row of the cache is [num_kv_heads, head_size], the same layout as a row of key, so
// the copy is flat. One workgroup per token; each thread moves pairs of elements.

#include "lib/common.wgsl"

// half_width: (num_kv_heads * head_size) / 2 pairs per row; num_slots: num_blocks * block_size
struct Params { n: u32, half_width: u32, num_slots: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> key: array<vec2f>;
@group(0) @binding(2) var<storage, read> value: array<vec2f>;
#if KV_F16
@group(0) @binding(3) var<storage, read_write> key_cache: array<u32>;
@group(0) @binding(4) var<storage, read_write> value_cache: array<u32>;
#else
@group(0) @binding(3) var<storage, read_write> key_cache: array<vec2f>;
@group(0) @binding(4) var<storage, read_write> value_cache: array<vec2f>;
#endif
@group(0) @binding(5) var<storage, read> slot_mapping: array<i32>;

override WG: u32 = 64;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wg_index(wid, nwg);
  if (t >= params.n) { return; }
  let slot = slot_mapping[t];
  if (slot < 0 || u32(slot) >= params.num_slots) { return; }
  let hw = params.half_width;
  let src = t * hw;
  let dst = u32(slot) * hw;
  for (var j = lid; j < hw; j += WG) {
#if KV_F16
    key_cache[dst + j] = pack2x16float(key[src + j]);
    value_cache[dst + j] = pack2x16float(value[src + j]);
#else
    key_cache[dst + j] = key[src + j];
    value_cache[dst + j] = value[src + j];
#endif
  }
}

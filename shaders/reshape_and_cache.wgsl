// reshape_and_cache: writes each new token's key and value rows into its slot of the paged
// cache, slot = block * block_size + offset; a negative slot (padding) is skipped, and so is a
// slot past the pool (the host owns slot validity; this only keeps the write inside the pool).
// key, value: [n, num_kv_heads * head_size] f32;
// key_cache, value_cache: [num_blocks, block_size, num_kv_heads, head_size] f32, or f16 stored
// as packed u32 pairs (KV_F16; head_size is even, so a pair never straddles two rows);
// slot_mapping: [n] i32.
// A pool split into parts (src/device/kv-pool.ts; KV_PARTS_2, _3, _4: at least that many) binds
// part p as key_cache_p / value_cache_p (part 0 as key_cache); a slot of part p is slot -
// p * part_slots there, part_slots = blocks of every part but the last * block_size.
// A slot's row of the cache is [num_kv_heads, head_size], the same layout as a row of key, so
// the copy is flat. One workgroup per token; each thread moves pairs of elements.

#include "lib/common.wgsl"

// half_width: (num_kv_heads * head_size) / 2 pairs per row; num_slots: num_blocks * block_size
struct Params {
  n: u32,
  half_width: u32,
  num_slots: u32,
#if KV_PARTS_2
  part_slots: u32,
#endif
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> key: array<vec2f>;
@group(0) @binding(2) var<storage, read> value: array<vec2f>;
#if KV_F16
alias kv_pair = u32;
#else
alias kv_pair = vec2f;
#endif
@group(0) @binding(3) var<storage, read_write> key_cache: array<kv_pair>;
@group(0) @binding(4) var<storage, read_write> value_cache: array<kv_pair>;
@group(0) @binding(5) var<storage, read> slot_mapping: array<i32>;
#if KV_PARTS_2
@group(0) @binding(10) var<storage, read_write> key_cache_1: array<kv_pair>;
@group(0) @binding(11) var<storage, read_write> value_cache_1: array<kv_pair>;
#endif
#if KV_PARTS_3
@group(0) @binding(12) var<storage, read_write> key_cache_2: array<kv_pair>;
@group(0) @binding(13) var<storage, read_write> value_cache_2: array<kv_pair>;
#endif
#if KV_PARTS_4
@group(0) @binding(14) var<storage, read_write> key_cache_3: array<kv_pair>;
@group(0) @binding(15) var<storage, read_write> value_cache_3: array<kv_pair>;
#endif

override WG: u32 = 64;

fn pack_pair(x: vec2f) -> kv_pair {
#if KV_F16
  return pack2x16float(x);
#else
  return x;
#endif
}

// pair i of the token's key and value rows into pair j of part `part` of the caches
fn store(part: u32, j: u32, i: u32) {
  let k = pack_pair(key[i]);
  let v = pack_pair(value[i]);
#if KV_PARTS_2
  switch part {
    case 1u: { key_cache_1[j] = k; value_cache_1[j] = v; }
#if KV_PARTS_3
    case 2u: { key_cache_2[j] = k; value_cache_2[j] = v; }
#endif
#if KV_PARTS_4
    case 3u: { key_cache_3[j] = k; value_cache_3[j] = v; }
#endif
    default: { key_cache[j] = k; value_cache[j] = v; }
  }
#else
  key_cache[j] = k;
  value_cache[j] = v;
#endif
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wg_index(wid, nwg);
  if (t >= params.n) { return; }
  let slot = slot_mapping[t];
  if (slot < 0 || u32(slot) >= params.num_slots) { return; }
  let hw = params.half_width;
  let src = t * hw;
#if KV_PARTS_2
  let part = u32(slot) / params.part_slots;
  let dst = (u32(slot) - part * params.part_slots) * hw;
#else
  let part = 0u;
  let dst = u32(slot) * hw;
#endif
  for (var j = lid; j < hw; j += WG) { store(part, dst + j, src + j); }
}

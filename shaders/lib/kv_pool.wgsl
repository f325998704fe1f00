// The KV cache bindings of the attention kernels, the lookup of a token's cache row, and loads
// that pick a block's part. Included by paged_attention_tile.wgsl (and so prefill_attention.wgsl
// and paged_attention_tiled.wgsl), by paged_attention.wgsl, prefill_attention_flash.wgsl and
// prefill_attention_mma.wgsl.
//
// key_cache, value_cache: [num_blocks, block_size, num_kv_heads, head_size] f16 | f32 seen as
// an array of kv_elem, a type the includer declares: the tile loop reads pairs (u32 of two
// f16, or vec2f), paged_attention.wgsl 16-byte chunks (vec4u of eight f16, or vec4f). A pool
// split into parts (src/device/kv-pool.ts; flags KV_PARTS_2, _3, _4: at least that many parts)
// adds key_cache_1.. and value_cache_1.. (bindings 10-15); cache_row finds a block's part as
// block / params.part_blocks.

@group(0) @binding(2) var<storage, read> key_cache: array<kv_elem>;
@group(0) @binding(3) var<storage, read> value_cache: array<kv_elem>;
#if KV_PARTS_2
@group(0) @binding(10) var<storage, read> key_cache_1: array<kv_elem>;
@group(0) @binding(11) var<storage, read> value_cache_1: array<kv_elem>;
#endif
#if KV_PARTS_3
@group(0) @binding(12) var<storage, read> key_cache_2: array<kv_elem>;
@group(0) @binding(13) var<storage, read> value_cache_2: array<kv_elem>;
#endif
#if KV_PARTS_4
@group(0) @binding(14) var<storage, read> key_cache_3: array<kv_elem>;
@group(0) @binding(15) var<storage, read> value_cache_3: array<kv_elem>;
#endif

// element i of part `part` of the key (value) pool. WGSL cannot index an array of bindings,
// hence the switch; an unsplit pool has no part to choose.
fn key_at(part: u32, i: u32) -> kv_elem {
#if KV_PARTS_2
  switch part {
    case 1u: { return key_cache_1[i]; }
#if KV_PARTS_3
    case 2u: { return key_cache_2[i]; }
#endif
#if KV_PARTS_4
    case 3u: { return key_cache_3[i]; }
#endif
    default: { return key_cache[i]; }
  }
#else
  return key_cache[i];
#endif
}

fn value_at(part: u32, i: u32) -> kv_elem {
#if KV_PARTS_2
  switch part {
    case 1u: { return value_cache_1[i]; }
#if KV_PARTS_3
    case 2u: { return value_cache_2[i]; }
#endif
#if KV_PARTS_4
    case 3u: { return value_cache_3[i]; }
#endif
    default: { return value_cache[i]; }
  }
#else
  return value_cache[i];
#endif
}

// The cache row (slot * num_kv_heads + kvh) of token `pos` of the sequence whose block-table
// entries start at `table`, and the part of a split pool that holds it: (row, part), part 0 for
// an unsplit pool. The includer declares block_tables and params (block_size, num_kv_heads, and
// part_blocks with KV_PARTS_2).
fn cache_row(table: u32, pos: u32, kvh: u32) -> vec2u {
  var block = u32(block_tables[table + pos / params.block_size]);
  var part = 0u;
#if KV_PARTS_2
  part = block / params.part_blocks;
  block -= part * params.part_blocks;
#endif
  return vec2u((block * params.block_size + pos % params.block_size) * params.num_kv_heads + kvh, part);
}

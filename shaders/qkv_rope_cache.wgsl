// qkv_rope_cache: one pass over the fused q/k/v projection of each token. The q and k heads get
// the rotary embedding of rope.wgsl (neox layout: pairs (i, i + half_rot) of a head, the head's
// elements past rot unchanged); q goes to its own tensor, k and v into the token's slot of the
// paged cache as reshape_and_cache.wgsl writes them (a negative slot, or one past the pool,
// skips the cache writes only: q is written for every token).
// qkv: [n, (num_heads + 2 * num_kv_heads) * head_size] f32, each row q's heads, k's, v's;
// positions: [n] i32; cos_sin: [max_pos, 2 * half_rot] f32, cos then sin (see rope.wgsl);
// q: [n, num_heads * head_size] f32; slot_mapping: [n] i32;
// key_cache, value_cache: [num_blocks, block_size, num_kv_heads, head_size] f32, or f16 stored
// as packed u32 pairs (KV_F16), or that pool in parts (KV_PARTS_2, _3, _4; see
// reshape_and_cache.wgsl: part p binds as key_cache_p / value_cache_p).
//
// One thread per unit of VEC elements of a row: 2 (pairs: one packed f16 pair per store), or 4
// with VEC4 (head_size and half_rot multiples of 4: 16-byte loads of qkv, cos_sin and q; the
// caches take a vec4f or two packed f16 pairs). A unit lies in one head, and so wholly in q, k
// or v. Each element is rotated on its own: the first half of a pair reads its partner half_rot
// further on, the second half half_rot back, and both compute what rope.wgsl computes for them
// (a * c - b * s, b * c + a * s), in the same order, so the two kernels agree bit for bit. A
// token's row spans `chunks` workgroups: decode steps of a few tokens still fill the GPU.

#include "lib/common.wgsl"

// units: units per qkv row; q_units, kv_units: units of q's and of k's (or v's) part of a row;
// num_slots: num_blocks * block_size; chunks: workgroups per token
struct Params {
  n: u32,
  units: u32,
  q_units: u32,
  kv_units: u32,
  head_size: u32,
  rot_heads: u32,
  half_rot: u32,
  max_pos: u32,
  num_slots: u32,
  chunks: u32,
#if KV_PARTS_2
  part_slots: u32,
#endif
}
@group(0) @binding(0) var<uniform> params: Params;
#if VEC4
alias row_vec = vec4f;
const VEC = 4u;
@group(0) @binding(1) var<storage, read> qkv: array<vec4f>;
@group(0) @binding(3) var<storage, read> cos_sin: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> q: array<vec4f>;
#if KV_F16
alias kv_vec = vec2u;
#else
alias kv_vec = vec4f;
#endif
#else
alias row_vec = vec2f;
const VEC = 2u;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read> cos_sin: array<f32>;
@group(0) @binding(5) var<storage, read_write> q: array<vec2f>;
#if KV_F16
alias kv_vec = u32;
#else
alias kv_vec = vec2f;
#endif
#endif
@group(0) @binding(2) var<storage, read> positions: array<i32>;
@group(0) @binding(4) var<storage, read> slot_mapping: array<i32>;
@group(0) @binding(6) var<storage, read_write> key_cache: array<kv_vec>;
@group(0) @binding(7) var<storage, read_write> value_cache: array<kv_vec>;
#if KV_PARTS_2
@group(0) @binding(10) var<storage, read_write> key_cache_1: array<kv_vec>;
@group(0) @binding(11) var<storage, read_write> value_cache_1: array<kv_vec>;
#endif
#if KV_PARTS_3
@group(0) @binding(12) var<storage, read_write> key_cache_2: array<kv_vec>;
@group(0) @binding(13) var<storage, read_write> value_cache_2: array<kv_vec>;
#endif
#if KV_PARTS_4
@group(0) @binding(14) var<storage, read_write> key_cache_3: array<kv_vec>;
@group(0) @binding(15) var<storage, read_write> value_cache_3: array<kv_vec>;
#endif

override WG: u32 = 256;

fn pack_vec(x: row_vec) -> kv_vec {
#if KV_F16
#if VEC4
  return vec2u(pack2x16float(x.xy), pack2x16float(x.zw));
#else
  return pack2x16float(x);
#endif
#else
  return x;
#endif
}

// unit j of part `part` of the key (is_key) or value pool
fn store(is_key: bool, part: u32, j: u32, x: kv_vec) {
#if KV_PARTS_2
  switch part {
    case 1u: { if (is_key) { key_cache_1[j] = x; } else { value_cache_1[j] = x; } }
#if KV_PARTS_3
    case 2u: { if (is_key) { key_cache_2[j] = x; } else { value_cache_2[j] = x; } }
#endif
#if KV_PARTS_4
    case 3u: { if (is_key) { key_cache_3[j] = x; } else { value_cache_3[j] = x; } }
#endif
    default: { if (is_key) { key_cache[j] = x; } else { value_cache[j] = x; } }
  }
#else
  if (is_key) { key_cache[j] = x; } else { value_cache[j] = x; }
#endif
}

// a position past the table (the host validates positions) reads its last row, not other memory
fn position(t: u32) -> u32 {
  return min(u32(max(positions[t], 0)), params.max_pos - 1u);
}

#if !VEC4
// element d of a rotated head whose first element is qkv[head0]; cs: the position's cos_sin row
fn rotate(head0: u32, d: u32, cs: u32) -> f32 {
  let h = params.half_rot;
  if (d < h) {
    let a = qkv[head0 + d];
    let b = qkv[head0 + d + h];
    return a * cos_sin[cs + d] - b * cos_sin[cs + h + d];
  }
  let i = d - h;
  let a = qkv[head0 + i];
  let b = qkv[head0 + d];
  return b * cos_sin[cs + i] + a * cos_sin[cs + h + i];
}
#endif

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = wg_index(wid, nwg);
  let t = w / params.chunks;
  if (t >= params.n) { return; }
  let u = (w - t * params.chunks) * WG + lid;
  if (u >= params.units) { return; }
  let col = u * VEC;
  let head = col / params.head_size;
  let d = col - head * params.head_size;
  let rotated = head < params.rot_heads && d < 2u * params.half_rot;
#if VEC4
  var x = qkv[t * params.units + u];
  if (rotated) {
    let pos = position(t);
    let h4 = params.half_rot / 4u;
    let first = d < params.half_rot;
    let g = select(d - params.half_rot, d, first) / 4u;
    let c = cos_sin[pos * 2u * h4 + g];
    let s = cos_sin[pos * 2u * h4 + h4 + g];
    if (first) {
      let b = qkv[t * params.units + u + h4];
      x = x * c - b * s;
    } else {
      let a = qkv[t * params.units + u - h4];
      x = x * c + a * s;
    }
  }
#else
  let at = t * params.units * 2u + col;
  var x = vec2f(qkv[at], qkv[at + 1u]);
  if (rotated) {
    let pos = position(t);
    let head0 = at - d;
    let cs = pos * 2u * params.half_rot;
    // rot is even, so a pair is rotated whole or not at all
    x = vec2f(rotate(head0, d, cs), rotate(head0, d + 1u, cs));
  }
#endif
  if (u < params.q_units) {
    q[t * params.q_units + u] = x;
    return;
  }
  let slot = slot_mapping[t];
  if (slot < 0 || u32(slot) >= params.num_slots) { return; }
  let r = u - params.q_units;
  let is_key = r < params.kv_units;
  let e = select(r - params.kv_units, r, is_key);
#if KV_PARTS_2
  let part = u32(slot) / params.part_slots;
  let row = u32(slot) - part * params.part_slots;
#else
  let part = 0u;
  let row = u32(slot);
#endif
  store(is_key, part, row * params.kv_units + e, pack_vec(x));
}

// apply_penalties: vLLM's repetition, frequency and presence penalties and banned tokens, in
// place on the logits, at a cost in the number of ids rather than the vocabulary.
//
// Two dispatches over one thread per id slot (prompt, output, banned of every row):
//   count (default): each slot ORs or adds into its token's word of a per-row scratch,
//     word = output count << 2 | banned << 1 | in prompt;
//   APPLY: each slot swaps its token's word for 0; the one slot that gets it nonzero owns the
//     token and rewrites its logit once. The swap also leaves the scratch all zero again for
//     the next call (a fresh buffer is zero), so nothing ever clears O(vocab).
// Ids are padded with -1; ids outside [0, v) are ignored, by both passes alike (the scratch
// must get back to zero). A parameter at its neutral value does not touch the logit at all.
// logits: [n, v] f32; prompt_ids: [n, max_prompt] i32; output_ids: [n, max_out] i32;
// banned_ids: [n, max_banned] i32; repetition, frequency, presence: [n] f32;
// counts: [n, v] u32 (scratch)

#include "lib/common.wgsl"

struct Params { n: u32, v: u32, max_prompt: u32, max_out: u32, max_banned: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> prompt_ids: array<i32>;
@group(0) @binding(2) var<storage, read> output_ids: array<i32>;
@group(0) @binding(3) var<storage, read> banned_ids: array<i32>;
@group(0) @binding(4) var<storage, read_write> counts: array<atomic<u32>>;
#if APPLY
@group(0) @binding(5) var<storage, read_write> logits: array<f32>;
@group(0) @binding(6) var<storage, read> repetition: array<f32>;
@group(0) @binding(7) var<storage, read> frequency: array<f32>;
@group(0) @binding(8) var<storage, read> presence: array<f32>;
#endif

const WG = 256u;
const IN_PROMPT = 1u;
const BANNED = 2u;
const ONE_OUTPUT = 4u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  // no barriers below: threads may leave early
  let slots = params.max_prompt + params.max_out + params.max_banned;
  let g = wg_index(wid, nwg) * WG + lid;
  if (g >= params.n * slots) { return; }
  let row = g / slots;
  var s = g % slots;
  var id: i32;
  var mark: u32;
  if (s < params.max_prompt) {
    id = prompt_ids[row * params.max_prompt + s];
    mark = IN_PROMPT;
  } else if (s < params.max_prompt + params.max_out) {
    s -= params.max_prompt;
    id = output_ids[row * params.max_out + s];
    mark = ONE_OUTPUT;
  } else {
    s -= params.max_prompt + params.max_out;
    id = banned_ids[row * params.max_banned + s];
    mark = BANNED;
  }
  if (id < 0 || u32(id) >= params.v) { return; }
  let at = row * params.v + u32(id);
#if !APPLY
  if (mark == ONE_OUTPUT) { atomicAdd(&counts[at], ONE_OUTPUT); } else { atomicOr(&counts[at], mark); }
#else
  let word = atomicExchange(&counts[at], 0u);
  if (word == 0u) { return; } // another slot of this token owns it
  var l = logits[at];
  let count = word >> 2u;
  if ((word & BANNED) != 0u) {
    l = bitcast<f32>(0xff800000u | (word & 0u)); // -inf (a runtime value: a constant inf is an error)
  } else {
    let r = repetition[row];
    if (r != 1.0) { l = select(l * r, l / r, l > 0.0); }
    if (count > 0u) {
      let f = frequency[row];
      let p = presence[row];
      if (f != 0.0) { l -= f * f32(count); }
      if (p != 0.0) { l -= p; }
    }
  }
  logits[at] = l;
#endif
}

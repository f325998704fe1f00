// apply_penalties: vLLM's repetition, frequency and presence penalties and banned tokens, in
// place on the logits, at a cost in the number of ids rather than the vocabulary
// (shaders/apply_penalties.wgsl; semantics: src/device/cpu/sampling.ts applyPenalties).
//
// Two launches over one thread per id slot (prompt, output, banned of every row):
//   count: each slot ORs or adds into its token's word of a per-row scratch,
//     word = output count << 2 | banned << 1 | in prompt;
//   apply: each slot swaps its token's word for 0; the one slot that gets it nonzero owns the
//     token and rewrites its logit once. The swap leaves the scratch all zero again for the
//     next call, so nothing ever clears O(vocab).
// Ids outside [0, v) are ignored by both passes alike. A parameter at its neutral value does
// not touch the logit; every step is rounded to f32 on its own (no fused multiply-add), as the
// reference does. logits: [n, v] f32; *_ids: [n, max_*] i32; repetition, frequency, presence:
// [n] f32; counts: [n, v] u32 scratch.
#include "ops.h"
#include "portable.cuh"

namespace parallm {

constexpr unsigned kInPrompt = 1u, kBanned = 2u, kOneOutput = 4u;

template <bool kApply>
__global__ void apply_penalties_kernel(ApplyPenaltiesArgs a) {
  const int64_t slots = static_cast<int64_t>(a.max_prompt) + a.max_out + a.max_banned;
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= a.n * slots) return;  // no barriers below
  const int64_t row = g / slots;
  int64_t s = g % slots;
  int id;
  unsigned mark;
  if (s < a.max_prompt) {
    id = a.prompt_ids[row * a.max_prompt + s];
    mark = kInPrompt;
  } else if (s < a.max_prompt + a.max_out) {
    s -= a.max_prompt;
    id = a.output_ids[row * a.max_out + s];
    mark = kOneOutput;
  } else {
    s -= a.max_prompt + a.max_out;
    id = a.banned_ids[row * a.max_banned + s];
    mark = kBanned;
  }
  if (id < 0 || id >= a.v) return;
  const int64_t at = row * a.v + id;
  if constexpr (!kApply) {
    if (mark == kOneOutput) {
      atomicAdd(&a.counts[at], kOneOutput);
    } else {
      atomicOr(&a.counts[at], mark);
    }
  } else {
    const unsigned word = atomicExch(&a.counts[at], 0u);
    if (word == 0u) return;  // another slot of this token owns it
    float l = a.logits[at];
    const unsigned count = word >> 2;
    if (word & kBanned) {
      l = -INFINITY;
    } else {
      const float r = a.repetition[row];
      if (r != 1.f) l = l > 0.f ? __fdiv_rn(l, r) : __fmul_rn(l, r);
      if (count > 0u) {
        const float f = a.frequency[row], p = a.presence[row];
        if (f != 0.f) l = __fsub_rn(l, __fmul_rn(f, static_cast<float>(count)));
        if (p != 0.f) l = __fsub_rn(l, p);
      }
    }
    a.logits[at] = l;
  }
}

void apply_penalties(const ApplyPenaltiesArgs& a, gpuStream_t stream) {
  const int64_t count = static_cast<int64_t>(a.n) * (static_cast<int64_t>(a.max_prompt) + a.max_out + a.max_banned);
  if (count == 0) return;
  const unsigned blocks = grid_for(count, 256);
  apply_penalties_kernel<false><<<blocks, 256, 0, stream>>>(a);
  apply_penalties_kernel<true><<<blocks, 256, 0, stream>>>(a);
}

}  // namespace parallm

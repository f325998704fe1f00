// logprobs: log_softmax of each row at its chosen token, and the row's top_n largest log-probs
// with their ids, in descending order with the lower id first on ties (shaders/logprobs.wgsl).
// logits: [n, v] f32; ids: [n] i32; out_logprob: [n] f32; out_top_ids: [n, top_n] i32;
// out_top_logprobs: [n, top_n] f32 (null when top_n is 0). An id outside [0, v) gives NaN.
//
// One block per row and one pass over it: each thread keeps an online max and sum of exp and a
// sorted list of its own top_n in (logit desc, id asc) order; a tree of pairwise merges in
// shared memory leaves the row's list in slot 0 (top_n <= 20: a merge is 20 steps of one thread).
#include "ops.h"
#include "portable.cuh"

namespace parallm {

constexpr int kLogprobsThreads = 128;
constexpr unsigned kNone = 0xffffffffu;  // an empty list entry: after every real one, -inf included

// whether (av, ai) comes before (bv, bi): larger logit, then lower id
__device__ __forceinline__ bool before(float av, unsigned ai, float bv, unsigned bi) {
  return ai != kNone && (bi == kNone || av > bv || (av == bv && ai < bi));
}

// s * exp(m_s - m) without the NaN of exp(-inf - -inf) when s is an empty sum
__device__ __forceinline__ float rescale(float s, float m_s, float m) { return s > 0.f ? s * expf(m_s - m) : 0.f; }

__global__ void __launch_bounds__(kLogprobsThreads) logprobs_kernel(const float* logits, const int32_t* ids, float* out_logprob, int32_t* out_top_ids, float* out_top_logprobs, int v, int top_n) {
  __shared__ float red_m[kLogprobsThreads];
  __shared__ float red_s[kLogprobsThreads];
  __shared__ float top_v[kLogprobsThreads * kMaxTopLogprobs];
  __shared__ unsigned top_i[kLogprobsThreads * kMaxTopLogprobs];
  const int row = blockIdx.x, tid = threadIdx.x;
  const float* x = logits + static_cast<int64_t>(row) * v;
  float lv[kMaxTopLogprobs];
  unsigned li[kMaxTopLogprobs];
  for (int q = 0; q < kMaxTopLogprobs; q++) lv[q] = 0.f, li[q] = kNone;

  float m = -INFINITY, s = 0.f;
  for (int j = tid; j < v; j += kLogprobsThreads) {
    const float xv = x[j];
    if (xv > m) {
      s = rescale(s, m, xv) + 1.f;
      m = xv;
    } else if (s > 0.f) {
      s += expf(xv - m);
    }
    // ascending j: an equal logit arriving later has the higher id and stays below
    if (top_n > 0 && before(xv, j, lv[top_n - 1], li[top_n - 1])) {
      int q = top_n - 1;
      while (q > 0 && before(xv, j, lv[q - 1], li[q - 1])) {
        lv[q] = lv[q - 1];
        li[q] = li[q - 1];
        q--;
      }
      lv[q] = xv;
      li[q] = j;
    }
  }
  red_m[tid] = m;
  red_s[tid] = s;
  __syncthreads();
  for (int h = kLogprobsThreads / 2; h > 0; h >>= 1) {
    if (tid < h) {
      const float m2 = fmaxf(red_m[tid], red_m[tid + h]);
      red_s[tid] = rescale(red_s[tid], red_m[tid], m2) + rescale(red_s[tid + h], red_m[tid + h], m2);
      red_m[tid] = m2;
    }
    __syncthreads();
  }
  const float log_z = red_m[0] + logf(red_s[0]);
  if (tid == 0) {
    const int id = ids[row];
    out_logprob[row] = id >= 0 && id < v ? x[id] - log_z : __uint_as_float(0x7fc00000u);
  }
  if (top_n == 0) return;  // uniform: top_n is the launch's

  const int mine = tid * kMaxTopLogprobs;
  for (int q = 0; q < top_n; q++) top_v[mine + q] = lv[q], top_i[mine + q] = li[q];
  __syncthreads();
  for (int h = kLogprobsThreads / 2; h > 0; h >>= 1) {
    if (tid < h) {
      const int other = (tid + h) * kMaxTopLogprobs;
      int a = 0, b = 0;
      for (int q = 0; q < top_n; q++) {
        if (!before(top_v[other + b], top_i[other + b], top_v[mine + a], top_i[mine + a])) {
          lv[q] = top_v[mine + a], li[q] = top_i[mine + a];
          a++;
        } else {
          lv[q] = top_v[other + b], li[q] = top_i[other + b];
          b++;
        }
      }
      for (int q = 0; q < top_n; q++) top_v[mine + q] = lv[q], top_i[mine + q] = li[q];
    }
    __syncthreads();
  }
  if (tid < top_n) {
    // fewer than top_n entries only when v < top_n, which checkOp rules out
    out_top_ids[static_cast<int64_t>(row) * top_n + tid] = static_cast<int32_t>(top_i[tid]);
    out_top_logprobs[static_cast<int64_t>(row) * top_n + tid] = top_v[tid] - log_z;
  }
}

void logprobs(const LogprobsArgs& a, gpuStream_t stream) {
  if (a.n == 0) return;
  logprobs_kernel<<<a.n, kLogprobsThreads, 0, stream>>>(a.logits, a.ids, a.out_logprob, a.out_top_ids, a.out_top_logprobs, a.v, a.top_n);
}

}  // namespace parallm

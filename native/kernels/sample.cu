// sample: one token per row from softmax(logits / temperature) restricted to the top-k logits,
// then the top-p (nucleus) mass of those, then the tokens at least min_p times as likely as the
// most likely one, by inverse CDF in vocabulary order at the row's uniform draw
// (shaders/sample.wgsl; the semantics are src/device/cpu/reference.ts samplingSet + sample).
// temperature <= 0 is greedy. logits: [n, v] f32; temperature, top_p, min_p, draws: [n] f32;
// top_k: [n] i32; out: [n] i32.
//
// No sort, as in the WGSL kernel: the k-th largest logit and the nucleus cut are found exactly
// by building their order-preserving u32 keys bit by bit from the top (32 counting passes
// each, block reductions only). min_p needs no search: its cut is the logit max + T ln(min_p).
// One block per row.
#include "ops.h"
#include "portable.cuh"

namespace parallm {

constexpr int kSampleThreads = 1024;

__global__ void __launch_bounds__(kSampleThreads) sample_kernel(const float* logits, const float* temperature, const int32_t* top_k, const float* top_p, const float* min_p, const float* draws, int32_t* out, int v) {
  __shared__ float red_f[kMaxWarps];
  __shared__ unsigned red_u[kMaxWarps];
  __shared__ float scan[kSampleThreads];
  const int row = blockIdx.x, tid = threadIdx.x, T = blockDim.x;
  const float* x = logits + static_cast<int64_t>(row) * v;
  const float temp = temperature[row];

  // the largest key, and the lowest index holding it (the greedy answer)
  unsigned mk = 0;
  for (int j = tid; j < v; j += T) mk = max(mk, order_key(x[j]));
  mk = block_max_u(mk, red_u);
  unsigned first = 0xffffffffu;
  for (int j = tid; j < v; j += T)
    if (order_key(x[j]) == mk) first = min(first, static_cast<unsigned>(j));
  first = ~block_max_u(~first, red_u);  // min through max
  if (temp <= 0.f) {                    // the whole block takes this branch: temp is the row's
    if (tid == 0) out[row] = static_cast<int32_t>(first);
    return;
  }
  const float inv_t = 1.f / temp;
  const float maxv = key_value(mk);

  // top-k: the largest t with count(key >= t) >= k is the key of the k-th largest logit
  const int k_in = top_k[row];
  const unsigned k = k_in > 0 && k_in < v ? static_cast<unsigned>(k_in) : static_cast<unsigned>(v);
  unsigned tk = 0;  // k = v keeps everything: every key is >= 0
  if (k < static_cast<unsigned>(v)) {
    for (int bit = 31; bit >= 0; bit--) {
      const unsigned cand = tk | (1u << bit);
      unsigned c = 0;
      for (int j = tid; j < v; j += T) c += order_key(x[j]) >= cand;
      if (block_sum_u(c, red_u) >= k) tk = cand;
    }
  }

  // top-p: the largest t whose kept mass reaches top_p of the top-k mass
  unsigned t = 0;
  const float p = top_p[row];
  if (p < 1.f) {
    float z = 0.f;
    for (int j = tid; j < v; j += T)
      if (order_key(x[j]) >= tk) z += expf((x[j] - maxv) * inv_t);
    const float goal = p * block_sum(z, red_f);
    for (int bit = 31; bit >= 0; bit--) {
      const unsigned cand = t | (1u << bit);
      const unsigned lim = max(cand, tk);
      float s = 0.f;
      for (int j = tid; j < v; j += T)
        if (order_key(x[j]) >= lim) s += expf((x[j] - maxv) * inv_t);
      if (block_sum(s, red_f) >= goal) t = cand;
    }
  }

  // min_p: p / p_max = exp((x - max) / T) >= min_p  <=>  x >= max + T ln(min_p), in f32 without
  // fused multiply-add, as the reference computes it (min_p > 1 acts as 1). +0 and -0 are one
  // logit but two keys: a cut at 0 takes the lower. No cut passes the largest logit.
  const float mp = fminf(min_p[row], 1.f);
  const float lim_m = __fadd_rn(maxv, __fmul_rn(temp, logf(mp)));
  const unsigned cut_m = mp > 0.f ? (lim_m == 0.f ? 0x7fffffffu : order_key(lim_m)) : 0u;
  const unsigned cut = min(max(max(t, tk), cut_m), mk);

  float z = 0.f;
  for (int j = tid; j < v; j += T)
    if (order_key(x[j]) >= cut) z += expf((x[j] - maxv) * inv_t);
  z = block_sum(z, red_f);

  // inverse CDF in vocabulary order: each thread owns a contiguous chunk; an exclusive scan of
  // the chunk sums finds the chunk holding the draw
  const int chunk = (v + T - 1) / T;
  const int lo = min(tid * chunk, v), hi = min(lo + chunk, v);
  float cs = 0.f;
  unsigned last = 0;  // 1 + the chunk's last kept token of nonzero weight: a -inf logit is never drawn
  for (int j = lo; j < hi; j++) {
    const float e = expf((x[j] - maxv) * inv_t);
    if (order_key(x[j]) >= cut && e > 0.f) {
      cs += e;
      last = j + 1;
    }
  }
  scan[tid] = cs;
  __syncthreads();
  if (tid == 0) {
    float run = 0.f;
    for (int i = 0; i < T; i++) {
      const float c = scan[i];
      scan[i] = run;
      run += c;
    }
  }
  __syncthreads();
  const float excl = scan[tid], incl = excl + cs;
  const float goal = draws[row] * z;
  unsigned pick = 0;  // 1 + index; 0 = not in this chunk
  if (cs > 0.f && excl <= goal && goal < incl) {
    float acc = excl;
    for (int j = lo; j < hi; j++) {
      const float e = expf((x[j] - maxv) * inv_t);
      if (order_key(x[j]) >= cut && e > 0.f) {
        acc += e;
        pick = j + 1;
        if (acc > goal) break;
      }
    }
  }
  // rounding can leave the draw past the last chunk: take the last kept token then
  const unsigned picked = block_max_u(pick, red_u);
  const unsigned fallback = block_max_u(last, red_u);
  if (tid == 0) out[row] = static_cast<int32_t>((picked ? picked : fallback) - 1);
}

void sample(const SampleArgs& a, gpuStream_t stream) {
  if (a.n == 0) return;
  const int threads = a.v >= 8192 ? kSampleThreads : 256;
  sample_kernel<<<a.n, threads, 0, stream>>>(a.logits, a.temperature, a.top_k, a.top_p, a.min_p, a.draws, a.out, a.v);
}

}  // namespace parallm

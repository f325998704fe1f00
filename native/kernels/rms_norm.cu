// rms_norm: RMSNorm with the optional fused residual add (shaders/rms_norm.wgsl).
// with residual: residual <- x + residual; out <- residual * rsqrt(mean(residual^2) + eps) * weight
// x, out, residual: [n, hidden] f32 (out may alias x); weight: [hidden] f32 | f16 | bf16.
// One block per row. No __restrict__: out and x may be one tensor. Each thread reads its own
// elements before it writes them, so aliasing is safe without a second buffer.
#include "ops.h"
#include "portable.cuh"

namespace parallm {

template <typename T>
__global__ void __launch_bounds__(1024) rms_norm_kernel(const float* x, const T* weight, float* out, float* residual, int hidden, float eps) {
  __shared__ float red[kMaxWarps];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * hidden;
  float ss = 0.f;
  for (int j = threadIdx.x; j < hidden; j += blockDim.x) {
    float v = x[base + j];
    if (residual) {
      v += residual[base + j];  // stored as f32 before it is normalised (the reference does so too)
      residual[base + j] = v;
    }
    ss += v * v;
  }
  ss = block_sum(ss, red);
  const float scale = 1.f / sqrtf(ss / static_cast<float>(hidden) + eps);
  const float* src = residual ? residual : x;
  for (int j = threadIdx.x; j < hidden; j += blockDim.x) out[base + j] = src[base + j] * scale * to_f32(weight[j]);
}

void rms_norm(const RmsNormArgs& a, gpuStream_t stream) {
  if (a.n == 0) return;
  const int threads = a.hidden >= 2048 ? 1024 : 256;
  PARALLM_DISPATCH_DTYPE(a.dtype, T, rms_norm_kernel<T><<<a.n, threads, 0, stream>>>(a.x, static_cast<const T*>(a.weight), a.out, a.residual, a.hidden, a.eps));
}

}  // namespace parallm

// rms_norm: RMSNorm with the optional fused residual add (shaders/rms_norm.wgsl).
// with residual: residual <- x + residual; out <- residual * rsqrt(mean(residual^2) + eps) * weight
// x, residual: [n, hidden] f32; weight: [hidden] f32 | f16 | bf16; out: [n, hidden] f32 (may alias
// x), or f16 | bf16 (O), rounded from the f32 result: the activations of a BLAS gemm, which would
// otherwise be cast by a kernel of their own before it (matmul_blas).
// One block per row. No __restrict__: out and x may be one tensor. Each thread reads its own
// elements before it writes them, so aliasing is safe without a second buffer.
#include "ops.h"
#include "portable.cuh"

namespace parallm {

template <typename T, typename O>
__global__ void __launch_bounds__(1024) rms_norm_kernel(const float* x, const T* weight, O* out, float* residual, int hidden, float eps) {
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
  for (int j = threadIdx.x; j < hidden; j += blockDim.x) out[base + j] = from_f32<O>(src[base + j] * scale * to_f32(weight[j]));
}

// Rows of up to 256 x 4 x kRmsVec values that split into float4s: the row stays in registers
// between the sum of squares and the scaling (one read of x and residual), 16-byte accesses.
constexpr int kRmsThreads = 256;
constexpr int kRmsVec = 8;

template <typename T, typename O>
__global__ void __launch_bounds__(kRmsThreads) rms_norm_vec4_kernel(const float* x, const T* weight, O* out, float* residual, int hidden, float eps) {
  __shared__ float red[kMaxWarps];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * hidden;
  const int h4 = hidden / 4;
  const float4* x4 = reinterpret_cast<const float4*>(x + base);
  float4* r4 = residual ? reinterpret_cast<float4*>(residual + base) : nullptr;
  float4 v[kRmsVec];
  float ss = 0.f;
#pragma unroll
  for (int u = 0; u < kRmsVec; u++) {
    const int j = threadIdx.x + u * kRmsThreads;
    if (j < h4) {
      float4 a = x4[j];
      if (r4) {
        const float4 r = r4[j];
        a.x += r.x, a.y += r.y, a.z += r.z, a.w += r.w;
        r4[j] = a;  // stored as f32 before it is normalised (the reference does so too)
      }
      v[u] = a;
      ss += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w;
    }
  }
  ss = block_sum(ss, red);
  const float scale = 1.f / sqrtf(ss / static_cast<float>(hidden) + eps);
#pragma unroll
  for (int u = 0; u < kRmsVec; u++) {
    const int j = threadIdx.x + u * kRmsThreads;
    if (j < h4) {
      const float4 a = v[u];
      float4 o;
      o.x = a.x * scale * to_f32(weight[4 * j]);
      o.y = a.y * scale * to_f32(weight[4 * j + 1]);
      o.z = a.z * scale * to_f32(weight[4 * j + 2]);
      o.w = a.w * scale * to_f32(weight[4 * j + 3]);
      store4(out + base + 4 * j, o);
    }
  }
}

void rms_norm(const RmsNormArgs& a, gpuStream_t stream) {
  if (a.n == 0) return;
  if (a.hidden % 4 == 0 && a.hidden <= 4 * kRmsThreads * kRmsVec && aligned16(a.x, a.out, a.residual)) {
    PARALLM_DISPATCH_DTYPE(a.dtype, T, PARALLM_DISPATCH_DTYPE(a.out_dtype, O, rms_norm_vec4_kernel<T, O><<<a.n, kRmsThreads, 0, stream>>>(a.x, static_cast<const T*>(a.weight), static_cast<O*>(a.out), a.residual, a.hidden, a.eps)));
    return;
  }
  const int threads = a.hidden >= 2048 ? 1024 : 256;
  PARALLM_DISPATCH_DTYPE(a.dtype, T, PARALLM_DISPATCH_DTYPE(a.out_dtype, O, rms_norm_kernel<T, O><<<a.n, threads, 0, stream>>>(a.x, static_cast<const T*>(a.weight), static_cast<O*>(a.out), a.residual, a.hidden, a.eps)));
}

}  // namespace parallm

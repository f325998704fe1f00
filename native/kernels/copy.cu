// copy: out = x as a kernel, the bandwidth ceiling of the op benchmark (shaders/copy.wgsl).
// x, out: [n] f32. float4 when both ends are 16-byte aligned, a scalar tail otherwise.
#include "ops.h"
#include "portable.cuh"

namespace parallm {

__global__ void copy_vec4_kernel(const float4* x, float4* out, int64_t n4) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n4; i += static_cast<int64_t>(gridDim.x) * blockDim.x) out[i] = x[i];
}

__global__ void copy_kernel(const float* x, float* out, int64_t start, int64_t n) {
  for (int64_t i = start + static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) out[i] = x[i];
}

void copy(const CopyArgs& a, gpuStream_t stream) {
  if (a.n == 0) return;
  const bool aligned = aligned16(a.x, a.out);
  const int64_t n4 = aligned ? a.n / 4 : 0;
  const int threads = 256;
  const int64_t cap = 65536;  // grid-stride beyond this many blocks
  if (n4) {
    const int64_t blocks = grid_for(n4, threads) < cap ? grid_for(n4, threads) : cap;
    copy_vec4_kernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(reinterpret_cast<const float4*>(a.x), reinterpret_cast<float4*>(a.out), n4);
  }
  const int64_t rest = a.n - 4 * n4;
  if (rest) {
    const int64_t blocks = grid_for(rest, threads) < cap ? grid_for(rest, threads) : cap;
    copy_kernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(a.x, a.out, 4 * n4, a.n);
  }
}

}  // namespace parallm

// silu_and_mul: out = silu(x[:, :inter]) * x[:, inter:] (shaders/silu_and_mul.wgsl).
// x: [n, 2 * inter] f32; out: [n, inter] f32. One thread per output element.
#include "ops.h"
#include "portable.cuh"

namespace parallm {

__global__ void silu_and_mul_kernel(const float* x, float* out, int n, int inter) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= static_cast<int64_t>(n) * inter) return;
  const int64_t row = g / inter;
  const int j = static_cast<int>(g % inter);
  const float gate = x[row * 2 * inter + j];
  const float up = x[row * 2 * inter + inter + j];
  out[g] = gate / (1.f + expf(-gate)) * up;
}

void silu_and_mul(const SiluAndMulArgs& a, gpuStream_t stream) {
  const int64_t count = static_cast<int64_t>(a.n) * a.inter;
  if (count == 0) return;
  silu_and_mul_kernel<<<grid_for(count, 256), 256, 0, stream>>>(a.x, a.out, a.n, a.inter);
}

}  // namespace parallm

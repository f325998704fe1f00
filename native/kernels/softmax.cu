// softmax: row softmax (shaders/softmax.wgsl). x, out: [n, v] f32, out may alias x.
// One block per row: max, then sum of exp, then the normalised write.
#include "ops.h"
#include "portable.cuh"

namespace parallm {

__global__ void __launch_bounds__(1024) softmax_kernel(const float* x, float* out, int v) {
  __shared__ float red[kMaxWarps];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * v;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < v; j += blockDim.x) m = fmaxf(m, x[base + j]);
  m = block_max(m, red);
  float s = 0.f;
  for (int j = threadIdx.x; j < v; j += blockDim.x) s += expf(x[base + j] - m);
  s = block_sum(s, red);
  const float inv = 1.f / s;
  for (int j = threadIdx.x; j < v; j += blockDim.x) out[base + j] = expf(x[base + j] - m) * inv;
}

void softmax(const SoftmaxArgs& a, gpuStream_t stream) {
  if (a.n == 0) return;
  softmax_kernel<<<a.n, a.v >= 4096 ? 1024 : 256, 0, stream>>>(a.x, a.out, a.v);
}

}  // namespace parallm

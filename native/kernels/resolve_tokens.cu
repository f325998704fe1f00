// resolve_tokens: token ids the host did not know when it built a step, filled in from the
// previous step's sampled ids, in place (shaders/resolve_tokens.wgsl). v <= -2 becomes
// sampled[-v - 2] (-1 if that row does not exist); token ids and -1 padding stay.
// ids: [n] i32 (flat); sampled: [m] i32.
#include "ops.h"
#include "portable.cuh"

namespace parallm {

__global__ void resolve_tokens_kernel(int32_t* ids, const int32_t* sampled, int n, int m) {
  const int i = static_cast<int>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int32_t v = ids[i];
  if (v <= -2) {
    const int row = -v - 2;
    ids[i] = row < m ? sampled[row] : -1;
  }
}

void resolve_tokens(const ResolveTokensArgs& a, gpuStream_t stream) {
  if (a.n == 0) return;
  const int threads = 256;
  resolve_tokens_kernel<<<static_cast<unsigned>((a.n + threads - 1) / threads), threads, 0, stream>>>(a.ids, a.sampled, a.n, a.m);
}

}  // namespace parallm

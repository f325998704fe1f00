// argmax: the index of each row's largest value, the lowest index on ties (shaders/argmax.wgsl).
// x: [n, v] f32; out: [n] i32. One block per row; NaN never wins (as the reference's `>`).
#include "ops.h"
#include "portable.cuh"

namespace parallm {

// (value, index) pairs: larger value first, then the lower index
__device__ __forceinline__ bool better(float av, int ai, float bv, int bi) {
  return av > bv || (av == bv && ai < bi);
}

__global__ void argmax_kernel(const float* x, int32_t* out, int v) {
  __shared__ float sv[kMaxWarps];
  __shared__ int si[kMaxWarps];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * v;
  float bv = -INFINITY;
  int bi = 0x7fffffff;
  for (int j = threadIdx.x; j < v; j += blockDim.x) {
    const float xv = x[base + j];
    if (better(xv, j, bv, bi)) {
      bv = xv;
      bi = j;
    }
  }
  for (int o = kWarp / 2; o > 0; o >>= 1) {
    const float ov = warp_xor(bv, o);
    const int oi = warp_xor(bi, o);
    if (better(ov, oi, bv, bi)) {
      bv = ov;
      bi = oi;
    }
  }
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  if (lane == 0) {
    sv[warp] = bv;
    si[warp] = bi;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < static_cast<int>(blockDim.x) / kWarp; w++) {
      if (better(sv[w], si[w], bv, bi)) {
        bv = sv[w];
        bi = si[w];
      }
    }
    out[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;  // a row of NaN: index 0, as the reference
  }
}

void argmax(const ArgmaxArgs& a, gpuStream_t stream) {
  if (a.n == 0) return;
  argmax_kernel<<<a.n, 256, 0, stream>>>(a.x, a.out, a.v);
}

}  // namespace parallm

// matmul_gemv: out = a @ w^T (+ bias) for few rows of a: the memory-bound decode matmul
// (shaders/matmul_gemv.wgsl, matmul_gemv_sg.wgsl). a: [m, k] f32 (m <= kGemvMaxRows);
// w: [n, k] f32 | f16 | bf16; bias: [n] f32 or null; out: [m, n] f32.
//
// One warp per output column: the warp streams the column's weight row once, each lane VEC
// consecutive values per step (16-byte loads when the row and a are 16-byte aligned), and
// multiplies them into all m rows of a, which stay in L1/L2. f32 accumulation, then a warp sum.
#include "ops.h"
#include "portable.cuh"

namespace parallm {

template <typename T, int VEC>
__device__ __forceinline__ void load_vec(const T* p, float (&out)[VEC]) {
  if constexpr (VEC == 1) {
    out[0] = to_f32(p[0]);
  } else if constexpr (sizeof(T) == 4) {
    static_assert(VEC == 4, "f32 loads are float4");
    const float4 v = *reinterpret_cast<const float4*>(p);
    out[0] = v.x, out[1] = v.y, out[2] = v.z, out[3] = v.w;
  } else {
    static_assert(VEC == 8, "16-bit loads are 8 values");
    const uint4 v = *reinterpret_cast<const uint4*>(p);
    const unsigned words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
      T lo, hi;
      const uint16_t b0 = static_cast<uint16_t>(words[i] & 0xffffu), b1 = static_cast<uint16_t>(words[i] >> 16);
      memcpy(&lo, &b0, 2);
      memcpy(&hi, &b1, 2);
      out[2 * i] = to_f32(lo);
      out[2 * i + 1] = to_f32(hi);
    }
  }
}

template <typename T, int VEC>
__global__ void matmul_gemv_kernel(const float* a, const T* w, const float* bias, float* out, int m, int n, int k) {
  const int lane = threadIdx.x % kWarp;
  const int col = blockIdx.x * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  if (col >= n) return;  // whole warps leave together: no barriers below
  const T* wr = w + static_cast<int64_t>(col) * k;
  float acc[kGemvMaxRows];
#pragma unroll
  for (int r = 0; r < kGemvMaxRows; r++) acc[r] = 0.f;
  for (int p = lane * VEC; p < k; p += kWarp * VEC) {
    float wv[VEC];
    load_vec<T, VEC>(wr + p, wv);
#pragma unroll
    for (int r = 0; r < kGemvMaxRows; r++) {
      if (r < m) {
        const float* ar = a + static_cast<int64_t>(r) * k + p;
        float av[VEC];
        if constexpr (VEC == 1) {
          av[0] = ar[0];
        } else {
#pragma unroll
          for (int q = 0; q < VEC; q += 4) {
            const float4 v = *reinterpret_cast<const float4*>(ar + q);
            av[q] = v.x, av[q + 1] = v.y, av[q + 2] = v.z, av[q + 3] = v.w;
          }
        }
#pragma unroll
        for (int i = 0; i < VEC; i++) acc[r] += av[i] * wv[i];
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kGemvMaxRows; r++) {
    if (r < m) {
      const float s = warp_sum(acc[r]);
      if (lane == 0) out[static_cast<int64_t>(r) * n + col] = s + (bias ? bias[col] : 0.f);
    }
  }
}

template <typename T>
static void launch_gemv(const MatmulArgs& a, gpuStream_t stream) {
  constexpr int kVec = sizeof(T) == 4 ? 4 : 8;
  const int threads = 256;
  const unsigned blocks = grid_for(a.n, threads / kWarp);
  const bool aligned = aligned16(a.a, a.w) && a.k % kVec == 0;
  if (aligned) {
    matmul_gemv_kernel<T, kVec><<<blocks, threads, 0, stream>>>(a.a, static_cast<const T*>(a.w), a.bias, a.out, a.m, a.n, a.k);
  } else {
    matmul_gemv_kernel<T, 1><<<blocks, threads, 0, stream>>>(a.a, static_cast<const T*>(a.w), a.bias, a.out, a.m, a.n, a.k);
  }
}

void matmul_gemv(const MatmulArgs& a, gpuStream_t stream) {
  if (a.m == 0 || a.n == 0) return;
  PARALLM_DISPATCH_DTYPE(a.dtype, T, launch_gemv<T>(a, stream));
}

}  // namespace parallm

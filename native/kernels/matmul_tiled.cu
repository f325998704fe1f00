// matmul_tiled: out = a @ w^T (+ bias), any shape, f32 operands and accumulation: the exact
// matmul where no BLAS library is loaded, and the oracle-grade path the parity tests pin with
// kernel 'tiled' (shaders/matmul_tiled.wgsl). a: [m, k] f32; w: [n, k] f32 | f16 | bf16;
// bias: [n] f32 or null; out: [m, n] f32.
//
// A block of 16 x 16 threads computes a 64 x 64 tile of out, 4 x 4 per thread, stepping
// through k in slices of 16 staged in shared memory (w widened to f32 as it is staged).
// Also here: the two helpers of the BLAS path (a cast of a to 16 bits, the bias epilogue).
#include "ops.h"
#include "portable.cuh"

namespace parallm {

constexpr int kTile = 64, kSlice = 16, kPer = 4;

template <typename T>
__global__ void matmul_tiled_kernel(const float* a, const T* w, const float* bias, float* out, int m, int n, int k) {
  // [slice][row] so that the inner loop reads consecutive rows; +1 keeps the stores conflict-free
  __shared__ float as[kSlice][kTile + 1];
  __shared__ float ws[kSlice][kTile + 1];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int row0 = blockIdx.y * kTile, col0 = blockIdx.x * kTile;
  float acc[kPer][kPer] = {};
  for (int p0 = 0; p0 < k; p0 += kSlice) {
    // 64 x 16 values of each operand, 4 per thread; out-of-range values are 0
    for (int e = threadIdx.x; e < kTile * kSlice; e += 256) {
      const int r = e / kSlice, c = e % kSlice;
      const int gr = row0 + r, gc = col0 + r, gp = p0 + c;
      as[c][r] = gr < m && gp < k ? a[static_cast<int64_t>(gr) * k + gp] : 0.f;
      ws[c][r] = gc < n && gp < k ? to_f32(w[static_cast<int64_t>(gc) * k + gp]) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int c = 0; c < kSlice; c++) {
      float av[kPer], wv[kPer];
#pragma unroll
      for (int i = 0; i < kPer; i++) {
        av[i] = as[c][ty + 16 * i];
        wv[i] = ws[c][tx + 16 * i];
      }
#pragma unroll
      for (int i = 0; i < kPer; i++)
#pragma unroll
        for (int j = 0; j < kPer; j++) acc[i][j] += av[i] * wv[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < kPer; i++) {
    const int r = row0 + ty + 16 * i;
    if (r >= m) continue;
#pragma unroll
    for (int j = 0; j < kPer; j++) {
      const int c = col0 + tx + 16 * j;
      if (c < n) out[static_cast<int64_t>(r) * n + c] = acc[i][j] + (bias ? bias[c] : 0.f);
    }
  }
}

void matmul_tiled(const MatmulArgs& a, gpuStream_t stream) {
  if (a.m == 0 || a.n == 0) return;
  dim3 grid(grid_for(a.n, kTile), grid_for(a.m, kTile));
  PARALLM_DISPATCH_DTYPE(a.dtype, T, matmul_tiled_kernel<T><<<grid, 256, 0, stream>>>(a.a, static_cast<const T*>(a.w), a.bias, a.out, a.m, a.n, a.k));
}

__global__ void add_bias_kernel(float* out, const float* bias, int m, int n) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g < static_cast<int64_t>(m) * n) out[g] += bias[g % n];
}

void add_bias(float* out, const float* bias, int m, int n, gpuStream_t stream) {
  const int64_t count = static_cast<int64_t>(m) * n;
  if (count) add_bias_kernel<<<grid_for(count, 256), 256, 0, stream>>>(out, bias, m, n);
}

template <typename T>
__global__ void cast_f32_kernel(const float* x, T* out, int64_t count) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g < count) out[g] = from_f32<T>(x[g]);
}

// four values a thread: a 16-byte load and an 8-byte store
template <typename T>
__global__ void cast_f32_vec4_kernel(const float4* x, T* out, int64_t count4) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g < count4) store4(out + 4 * g, x[g]);
}

void cast_f32(const float* x, void* out, int64_t count, int dtype, gpuStream_t stream) {
  if (count == 0) return;
  if (count % 4 == 0 && aligned16(x) && reinterpret_cast<uintptr_t>(out) % 8 == 0) {
    const unsigned blocks4 = grid_for(count / 4, 256);
    const float4* x4 = reinterpret_cast<const float4*>(x);
    if (dtype == kBF16) cast_f32_vec4_kernel<bf16_t><<<blocks4, 256, 0, stream>>>(x4, static_cast<bf16_t*>(out), count / 4);
    else cast_f32_vec4_kernel<__half><<<blocks4, 256, 0, stream>>>(x4, static_cast<__half*>(out), count / 4);
    return;
  }
  const unsigned blocks = grid_for(count, 256);
  if (dtype == kBF16) {
    cast_f32_kernel<bf16_t><<<blocks, 256, 0, stream>>>(x, static_cast<bf16_t*>(out), count);
  } else {
    cast_f32_kernel<__half><<<blocks, 256, 0, stream>>>(x, static_cast<__half*>(out), count);
  }
}

}  // namespace parallm

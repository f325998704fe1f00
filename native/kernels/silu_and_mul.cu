// silu_and_mul: out = silu(x[:, :inter]) * x[:, inter:] (shaders/silu_and_mul.wgsl).
// x: [n, 2 * inter] f32; out: [n, inter] f32, or f16 | bf16 (O) for a BLAS gemm's activations, as
// rms_norm's. One thread per output element.
#include "ops.h"
#include "portable.cuh"

namespace parallm {

__device__ __forceinline__ float silu_mul(float gate, float up) { return gate / (1.f + expf(-gate)) * up; }

// Rows along grid y (strided past 65535), columns along x: no 64-bit division per element.
// Where inter is a multiple of 4, each thread takes 4 columns with 16-byte loads and stores.
template <typename O>
__global__ void silu_and_mul_kernel(const float* x, O* out, int n, int inter) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= inter) return;
  for (int row = blockIdx.y; row < n; row += gridDim.y) {
    const float* xr = x + static_cast<int64_t>(row) * 2 * inter;
    out[static_cast<int64_t>(row) * inter + j] = from_f32<O>(silu_mul(xr[j], xr[inter + j]));
  }
}

template <typename O>
__global__ void silu_and_mul_vec4_kernel(const float* x, O* out, int n, int inter) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;  // a float4 of columns
  if (j >= inter / 4) return;
  for (int row = blockIdx.y; row < n; row += gridDim.y) {
    const float4* xr = reinterpret_cast<const float4*>(x + static_cast<int64_t>(row) * 2 * inter);
    const float4 g = xr[j], u = xr[inter / 4 + j];
    float4 o;
    o.x = silu_mul(g.x, u.x), o.y = silu_mul(g.y, u.y), o.z = silu_mul(g.z, u.z), o.w = silu_mul(g.w, u.w);
    store4(out + static_cast<int64_t>(row) * inter + 4 * j, o);
  }
}

void silu_and_mul(const SiluAndMulArgs& a, gpuStream_t stream) {
  if (a.n == 0 || a.inter == 0) return;
  const unsigned rows = grid_rows(a.n);
  const bool vec = a.inter % 4 == 0 && aligned16(a.x, a.out);
  if (vec) {
    PARALLM_DISPATCH_DTYPE(a.out_dtype, O, silu_and_mul_vec4_kernel<O><<<dim3(grid_for(a.inter / 4, 256), rows), 256, 0, stream>>>(a.x, static_cast<O*>(a.out), a.n, a.inter));
  } else {
    PARALLM_DISPATCH_DTYPE(a.out_dtype, O, silu_and_mul_kernel<O><<<dim3(grid_for(a.inter, 256), rows), 256, 0, stream>>>(a.x, static_cast<O*>(a.out), a.n, a.inter));
  }
}

}  // namespace parallm

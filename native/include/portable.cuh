// One kernel source for NVIDIA (nvcc) and AMD (hipcc): the few names that differ between CUDA
// and HIP, and the warp width, which is 32 on NVIDIA and 64 on CDNA (gfx90a, gfx940). Kernels
// use kWarp and the warp_* helpers below and never assume either width.
#pragma once

#include <stdint.h>

#if defined(PARALLM_EMU)
#include "emu.h"  // the CPU emulator (native/emu): checks the kernels' logic without a GPU
#elif defined(__HIPCC__) || defined(__HIP_PLATFORM_AMD__)
#define PARALLM_HIP 1
#include <hip/hip_runtime.h>
#include <hip/hip_fp16.h>
#else
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#endif

#include "gpu_runtime.h"

// The warp (wavefront) width of the target being compiled. hipcc compiles every kernel once
// per --offload-arch and defines __AMDGCN_WAVEFRONT_SIZE in those device passes; the host
// pass never uses kWarp for anything but launch arithmetic that does not depend on it.
#if defined(PARALLM_EMU)
#define PARALLM_WARP PARALLM_EMU_WARP
#elif defined(PARALLM_HIP)
#if defined(__AMDGCN_WAVEFRONT_SIZE)
#define PARALLM_WARP __AMDGCN_WAVEFRONT_SIZE
#elif defined(__HIP_DEVICE_COMPILE__)
#error "a HIP device pass without __AMDGCN_WAVEFRONT_SIZE: the wavefront width is unknown"
#else
#define PARALLM_WARP 64
#endif
#else
#define PARALLM_WARP 32
#endif

constexpr int kWarp = PARALLM_WARP;

// Lane shuffles over the whole warp. CUDA needs the participation mask; HIP's are warp-wide.
__device__ __forceinline__ float warp_xor(float v, int mask) {
#if defined(PARALLM_HIP)
  return __shfl_xor(v, mask, kWarp);
#else
  return __shfl_xor_sync(0xffffffffu, v, mask, kWarp);
#endif
}

__device__ __forceinline__ int warp_xor(int v, int mask) {
#if defined(PARALLM_HIP)
  return __shfl_xor(v, mask, kWarp);
#else
  return __shfl_xor_sync(0xffffffffu, v, mask, kWarp);
#endif
}

__device__ __forceinline__ unsigned warp_xor(unsigned v, int mask) {
  return static_cast<unsigned>(warp_xor(static_cast<int>(v), mask));
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += warp_xor(v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v = fmaxf(v, warp_xor(v, o));
  return v;
}

__device__ __forceinline__ unsigned warp_sum_u(unsigned v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += warp_xor(v, o);
  return v;
}

__device__ __forceinline__ unsigned warp_max_u(unsigned v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) {
    unsigned w = warp_xor(v, o);
    v = w > v ? w : v;
  }
  return v;
}

// Block-wide reductions through `scratch` (one slot per warp, at least blockDim.x / kWarp).
// Every thread of the block must call them (they hold barriers) and gets the result.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = 0.f;
  for (int i = 0; i < warps; i++) r += scratch[i];
  return r;
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = scratch[0];
  for (int i = 1; i < warps; i++) r = fmaxf(r, scratch[i]);
  return r;
}

__device__ __forceinline__ unsigned block_sum_u(unsigned v, unsigned* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  v = warp_sum_u(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  unsigned r = 0;
  for (int i = 0; i < warps; i++) r += scratch[i];
  return r;
}

__device__ __forceinline__ unsigned block_max_u(unsigned v, unsigned* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  v = warp_max_u(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  unsigned r = scratch[0];
  for (int i = 1; i < warps; i++) r = scratch[i] > r ? scratch[i] : r;
  return r;
}

// Most warps a block of up to 1024 threads can hold (32 on NVIDIA, 16 on CDNA).
constexpr int kMaxWarps = 1024 / kWarp;

// 16-bit weights and caches: f16 through the vendor's __half, bf16 as raw bits (a bf16 is the
// top half of an f32, so widening is a shift; the vendors' bf16 types differ between CUDA and
// HIP 5.x, the bits do not).
struct bf16_t {
  uint16_t bits;
};

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f32(bf16_t x) { return __uint_as_float(static_cast<unsigned>(x.bits) << 16); }

template <typename T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <>
__device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ bf16_t from_f32<bf16_t>(float x) {
  // round to nearest even, NaN kept quiet (as src/device/dtype.ts f32ToBf16Bits)
  unsigned b = __float_as_uint(x);
  if ((b & 0x7fffffffu) > 0x7f800000u) return bf16_t{static_cast<uint16_t>((b >> 16) | 0x40u)};
  b += 0x7fffu + ((b >> 16) & 1u);
  return bf16_t{static_cast<uint16_t>(b >> 16)};
}

// Order-preserving map of f32 to u32: a < b  <=>  key(a) < key(b) (sampling's bit searches).
__device__ __forceinline__ unsigned order_key(float x) {
  unsigned b = __float_as_uint(x);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float key_value(unsigned k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

// Four consecutive values of an activation row, rounded to O: one 16-byte store for f32 (p
// 16-byte aligned), one 8-byte store for the 16-bit types (p 8-byte aligned).
__device__ __forceinline__ unsigned bits_of(__half h) { return __half_as_ushort(h); }
__device__ __forceinline__ unsigned bits_of(bf16_t h) { return h.bits; }
template <typename O>
__device__ __forceinline__ void store4(O* p, float4 v) {
  if constexpr (sizeof(O) == 4) {
    *reinterpret_cast<float4*>(p) = v;
  } else {
    uint2 u;
    u.x = bits_of(from_f32<O>(v.x)) | (bits_of(from_f32<O>(v.y)) << 16);
    u.y = bits_of(from_f32<O>(v.z)) | (bits_of(from_f32<O>(v.w)) << 16);
    *reinterpret_cast<uint2*>(p) = u;
  }
}

// Runs `...` with T bound to the storage type of a DType code (float, __half, bf16_t).
#define PARALLM_DISPATCH_DTYPE(dtype, T, ...) \
  switch (dtype) {                            \
    case ::parallm::kF16: {                   \
      using T = __half;                       \
      __VA_ARGS__;                            \
      break;                                  \
    }                                         \
    case ::parallm::kBF16: {                  \
      using T = bf16_t;                       \
      __VA_ARGS__;                            \
      break;                                  \
    }                                         \
    default: {                                \
      using T = float;                        \
      __VA_ARGS__;                            \
      break;                                  \
    }                                         \
  }

// Blocks of `threads` covering `count` items (grid.x holds up to 2^31 - 1 blocks).
inline unsigned grid_for(int64_t count, int threads) {
  return static_cast<unsigned>((count + threads - 1) / threads);
}

// grid.y for one row per block: at most 65535, kernels stride past it (row += gridDim.y).
inline unsigned grid_rows(int n) { return static_cast<unsigned>(n < 65535 ? n : 65535); }

// Whether every pointer is 16-byte aligned (the float4 / uint4 paths).
template <typename... P>
inline bool aligned16(const P*... p) {
  return ((reinterpret_cast<uintptr_t>(p) % 16 == 0) && ...);
}

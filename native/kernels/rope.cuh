// The rotation of one neox pair that rope and qkv_rope_cache share, so that the fused op is
// rope's arithmetic exactly: (a, b) = (x[i], x[i + half_rot]) of a head at angle (c, s) becomes
// (a * c - b * s, b * c + a * s). Each product is rounded before the sum (no fused multiply-add,
// which a compiler may form in one kernel and not in the other): the two kernels round alike
// on nvcc, hipcc and the emulator (built without contraction), which so runs what a GPU runs.
#pragma once

#include "portable.cuh"

namespace parallm {

__device__ __forceinline__ float rope_first(float a, float b, float c, float s) { return __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s)); }
__device__ __forceinline__ float rope_second(float a, float b, float c, float s) { return __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s)); }

}  // namespace parallm

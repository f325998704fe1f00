// reshape_and_cache: each new token's K and V into its slot of the paged cache
// (shaders/reshape_and_cache.wgsl). slot = block * block_size + offset; a negative slot
// (padding) or one past the pool is skipped. key, value: [n, width] f32 with width =
// num_kv_heads * head_size; caches: [num_slots, width] f32 | f16 (rounded to nearest even).
// One thread per (token, element).
#include "ops.h"
#include "portable.cuh"

namespace parallm {

template <typename T>
__global__ void reshape_and_cache_kernel(const float* key, const float* value, T* key_cache, T* value_cache, const int32_t* slot_mapping, int n, int width, int64_t num_slots) {
  // tokens along grid y (strided past 65535), the row along x: no 64-bit division per element
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= width) return;
  for (int t = blockIdx.y; t < n; t += gridDim.y) {
    const int slot = slot_mapping[t];
    if (slot < 0 || slot >= num_slots) continue;
    const int64_t at = static_cast<int64_t>(slot) * width + e;
    const int64_t g = static_cast<int64_t>(t) * width + e;
    key_cache[at] = from_f32<T>(key[g]);
    value_cache[at] = from_f32<T>(value[g]);
  }
}

void reshape_and_cache(const ReshapeAndCacheArgs& a, gpuStream_t stream) {
  if (a.n == 0 || a.width == 0) return;
  const dim3 blocks(grid_for(a.width, 256), grid_rows(a.n));
  if (a.dtype == kF16) {
    reshape_and_cache_kernel<__half><<<blocks, 256, 0, stream>>>(a.key, a.value, static_cast<__half*>(a.key_cache), static_cast<__half*>(a.value_cache), a.slot_mapping, a.n, a.width, a.num_slots);
  } else {
    reshape_and_cache_kernel<float><<<blocks, 256, 0, stream>>>(a.key, a.value, static_cast<float*>(a.key_cache), static_cast<float*>(a.value_cache), a.slot_mapping, a.n, a.width, a.num_slots);
  }
}

}  // namespace parallm

// copy_blocks: block pairs[i][1] <- block pairs[i][0] in both caches (copy-on-write of a shared
// last block; shaders/copy_blocks.wgsl). caches: [num_blocks, block_words] u32 (a block of
// f16 or f32 values is a whole number of words: head sizes are even); pairs: [m, 2] i32.
// Grid: (m, chunks of the block); pairs naming a block outside the pool are skipped.
#include "ops.h"
#include "portable.cuh"

namespace parallm {

__global__ void copy_blocks_kernel(uint32_t* key_cache, uint32_t* value_cache, const int32_t* pairs, int num_blocks, int64_t block_words) {
  const int src = pairs[2 * blockIdx.x], dst = pairs[2 * blockIdx.x + 1];
  if (src < 0 || dst < 0 || src >= num_blocks || dst >= num_blocks) return;
  const int64_t s = static_cast<int64_t>(src) * block_words, d = static_cast<int64_t>(dst) * block_words;
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; i < block_words; i += static_cast<int64_t>(gridDim.y) * blockDim.x) {
    key_cache[d + i] = key_cache[s + i];
    value_cache[d + i] = value_cache[s + i];
  }
}

void copy_blocks(const CopyBlocksArgs& a, gpuStream_t stream) {
  if (a.m == 0) return;
  const int threads = 256;
  const int64_t chunks = grid_for(a.block_words, threads);
  dim3 grid(a.m, static_cast<unsigned>(chunks < 64 ? chunks : 64));
  copy_blocks_kernel<<<grid, threads, 0, stream>>>(a.key_cache, a.value_cache, a.pairs, a.num_blocks, a.block_words);
}

}  // namespace parallm

// embedding: out[i, :] = table[ids[i], :] widened to f32 (shaders/embedding.wgsl).
// ids: [n] i32; table: [vocab, hidden] f32 | f16 | bf16; out: [n, hidden] f32.
// One block per id; an id outside [0, vocab) gives a row of NaN (a bug upstream, made loud).
#include "ops.h"
#include "portable.cuh"

namespace parallm {

template <typename T>
__global__ void embedding_kernel(const int32_t* ids, const T* table, float* out, int hidden, int vocab) {
  const int i = blockIdx.x;
  const int id = ids[i];
  float* o = out + static_cast<int64_t>(i) * hidden;
  if (id < 0 || id >= vocab) {
    for (int j = threadIdx.x; j < hidden; j += blockDim.x) o[j] = __uint_as_float(0x7fc00000u);
    return;
  }
  const T* row = table + static_cast<int64_t>(id) * hidden;
  for (int j = threadIdx.x; j < hidden; j += blockDim.x) o[j] = to_f32(row[j]);
}

void embedding(const EmbeddingArgs& a, gpuStream_t stream) {
  if (a.n == 0) return;
  PARALLM_DISPATCH_DTYPE(a.dtype, T, embedding_kernel<T><<<a.n, 256, 0, stream>>>(a.ids, static_cast<const T*>(a.table), a.out, a.hidden, a.vocab));
}

}  // namespace parallm

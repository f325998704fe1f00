// rope: rotary embedding in place on the first num_heads heads of each row, from the host's
// cos/sin table (shaders/rope.wgsl; see src/device/ops.ts for why the table is not computed here).
// x: [n, width] f32; positions: [n] i32 (< max_pos); cos_sin: [max_pos, 2 * half_rot] f32,
// cos in [:, :half_rot], sin in [:, half_rot:]. neox pairs (i, i + half_rot); interleaved (2i, 2i + 1).
// One thread per (token, head, pair); the rotation is rope.cuh's, which qkv_rope_cache shares.
#include "ops.h"
#include "portable.cuh"
#include "rope.cuh"

namespace parallm {

// Tokens along grid y (strided past 65535), (head, pair) along x: 32-bit index arithmetic only.
__global__ void rope_kernel(float* x, const int32_t* positions, const float* cos_sin, int n, int width, int num_heads, int head_size, int half_rot, int max_pos, int interleaved) {
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= num_heads * half_rot) return;
  const int hd = e / half_rot, i = e - hd * half_rot;
  for (int t = blockIdx.y; t < n; t += gridDim.y) {
    int pos = positions[t];
    pos = pos < 0 ? 0 : (pos >= max_pos ? max_pos - 1 : pos);  // never read outside the table
    const float c = cos_sin[static_cast<int64_t>(pos) * 2 * half_rot + i];
    const float s = cos_sin[static_cast<int64_t>(pos) * 2 * half_rot + half_rot + i];
    float* base = x + static_cast<int64_t>(t) * width + static_cast<int64_t>(hd) * head_size;
    const int i0 = interleaved ? 2 * i : i;
    const int i1 = interleaved ? 2 * i + 1 : i + half_rot;
    const float a = base[i0], b = base[i1];
    base[i0] = rope_first(a, b, c, s);
    base[i1] = rope_second(a, b, c, s);
  }
}

void rope(const RopeArgs& a, gpuStream_t stream) {
  const int per_token = a.num_heads * a.half_rot;
  if (a.n == 0 || per_token == 0) return;
  rope_kernel<<<dim3(grid_for(per_token, 256), grid_rows(a.n)), 256, 0, stream>>>(a.x, a.positions, a.cos_sin, a.n, a.width, a.num_heads, a.head_size, a.half_rot, a.max_pos, a.interleaved);
}

}  // namespace parallm

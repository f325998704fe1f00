// rope: rotary embedding in place on the first num_heads heads of each row, from the host's
// cos/sin table (shaders/rope.wgsl; see src/device/ops.ts for why the table is not computed here).
// x: [n, width] f32; positions: [n] i32 (< max_pos); cos_sin: [max_pos, 2 * half_rot] f32,
// cos in [:, :half_rot], sin in [:, half_rot:]. neox pairs (i, i + half_rot); interleaved (2i, 2i + 1).
// One thread per (token, head, pair).
#include "ops.h"
#include "portable.cuh"

namespace parallm {

__global__ void rope_kernel(float* x, const int32_t* positions, const float* cos_sin, int n, int width, int num_heads, int head_size, int half_rot, int max_pos, int interleaved) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= static_cast<int64_t>(n) * num_heads * half_rot) return;
  const int i = static_cast<int>(g % half_rot);
  const int64_t th = g / half_rot;
  const int hd = static_cast<int>(th % num_heads);
  const int t = static_cast<int>(th / num_heads);
  int pos = positions[t];
  pos = pos < 0 ? 0 : (pos >= max_pos ? max_pos - 1 : pos);  // never read outside the table
  const float c = cos_sin[static_cast<int64_t>(pos) * 2 * half_rot + i];
  const float s = cos_sin[static_cast<int64_t>(pos) * 2 * half_rot + half_rot + i];
  const int64_t base = static_cast<int64_t>(t) * width + static_cast<int64_t>(hd) * head_size;
  const int64_t i0 = interleaved ? base + 2 * i : base + i;
  const int64_t i1 = interleaved ? base + 2 * i + 1 : base + i + half_rot;
  const float a = x[i0], b = x[i1];
  x[i0] = a * c - b * s;
  x[i1] = b * c + a * s;
}

void rope(const RopeArgs& a, gpuStream_t stream) {
  const int64_t threads = static_cast<int64_t>(a.n) * a.num_heads * a.half_rot;
  if (threads == 0) return;
  rope_kernel<<<grid_for(threads, 256), 256, 0, stream>>>(a.x, a.positions, a.cos_sin, a.n, a.width, a.num_heads, a.head_size, a.half_rot, a.max_pos, a.interleaved);
}

}  // namespace parallm

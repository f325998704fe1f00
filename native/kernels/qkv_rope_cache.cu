// qkv_rope_cache: one pass over the fused q/k/v projection of each token
// (shaders/qkv_rope_cache.wgsl): rope's rotation (rope.cuh, neox pairs (i, i + half_rot) of a
// head, elements past rot unchanged) on the q and k heads; q to its own tensor, k and v into the
// token's slot of the cache as reshape_and_cache writes them (a negative slot, or one past the
// pool, skips the cache writes only: q is written for every token).
// qkv: [n, width] f32, width = (num_heads + 2 * num_kv_heads) * head_size, each row q's heads,
// then k's, then v's; positions: [n] i32; cos_sin: [max_pos, 2 * half_rot] f32, cos then sin;
// q: [n, num_heads * head_size] f32; caches: [num_slots, num_kv_heads * head_size] f32 | f16.
//
// One thread per element of a row, or per 4 (head_size and half_rot multiples of 4, pointers
// 16-byte aligned: float4 loads of qkv and cos_sin, float4 stores of q and f32 caches, 8 bytes of
// f16). Each element is rotated on its own: the first half of a pair reads its partner half_rot
// further on, the second half half_rot back, so a thread needs no neighbour and a unit of 4
// never straddles q, k and v. Tokens along grid y (strided past 65535), the row along x: 32-bit
// index arithmetic within a row, a decode step of one token still spans width / 256 blocks.
#include "ops.h"
#include "portable.cuh"
#include "rope.cuh"

namespace parallm {

struct alignas(8) half4 {
  __half x, y, z, w;
};

__device__ __forceinline__ void store4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ void store4(__half* p, float4 v) {
  half4 h;
  h.x = __float2half_rn(v.x), h.y = __float2half_rn(v.y), h.z = __float2half_rn(v.z), h.w = __float2half_rn(v.w);
  *reinterpret_cast<half4*>(p) = h;
}

__device__ __forceinline__ int clamp_pos(int pos, int max_pos) { return pos < 0 ? 0 : (pos >= max_pos ? max_pos - 1 : pos); }

// element d (< 2 * half_rot) of a rotated head; cs: the position's cos_sin row
__device__ __forceinline__ float rope_element(const float* head, int d, const float* cs, int half_rot) {
  if (d < half_rot) return rope_first(head[d], head[d + half_rot], cs[d], cs[half_rot + d]);
  const int i = d - half_rot;
  return rope_second(head[i], head[d], cs[i], cs[half_rot + i]);
}

template <typename T>
__global__ void qkv_rope_cache_kernel(const float* qkv, const int32_t* positions, const float* cos_sin, float* q, T* key_cache, T* value_cache, const int32_t* slot_mapping, int n, int num_heads,
                                      int num_kv_heads, int head_size, int half_rot, int max_pos, int64_t num_slots) {
  const int q_width = num_heads * head_size, kv_width = num_kv_heads * head_size;
  const int width = q_width + 2 * kv_width;
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= width) return;
  const int hd = e / head_size, d = e - hd * head_size;
  const bool rotated = hd < num_heads + num_kv_heads && d < 2 * half_rot;
  for (int t = blockIdx.y; t < n; t += gridDim.y) {
    const float* row = qkv + static_cast<int64_t>(t) * width;
    float x = row[e];
    if (rotated) x = rope_element(row + hd * head_size, d, cos_sin + static_cast<int64_t>(clamp_pos(positions[t], max_pos)) * 2 * half_rot, half_rot);
    if (e < q_width) {
      q[static_cast<int64_t>(t) * q_width + e] = x;
      continue;
    }
    const int slot = slot_mapping[t];
    if (slot < 0 || slot >= num_slots) continue;
    const int c = e - q_width;
    T* cache = c < kv_width ? key_cache : value_cache;
    cache[static_cast<int64_t>(slot) * kv_width + (c < kv_width ? c : c - kv_width)] = from_f32<T>(x);
  }
}

template <typename T>
__global__ void qkv_rope_cache_vec4_kernel(const float* qkv, const int32_t* positions, const float* cos_sin, float* q, T* key_cache, T* value_cache, const int32_t* slot_mapping, int n,
                                           int num_heads, int num_kv_heads, int head_size, int half_rot, int max_pos, int64_t num_slots) {
  const int q_width = num_heads * head_size, kv_width = num_kv_heads * head_size;
  const int width = q_width + 2 * kv_width;
  const int u = blockIdx.x * blockDim.x + threadIdx.x;  // a float4 of the row
  const int e = 4 * u;
  if (e >= width) return;
  const int hd = e / head_size, d = e - hd * head_size;
  const bool rotated = hd < num_heads + num_kv_heads && d < 2 * half_rot;
  const bool first = d < half_rot;
  const int g = first ? d : d - half_rot;  // the pair's index into the cos and sin halves
  for (int t = blockIdx.y; t < n; t += gridDim.y) {
    const float4* row = reinterpret_cast<const float4*>(qkv + static_cast<int64_t>(t) * width);
    float4 x = row[u];
    if (rotated) {
      const float* cs = cos_sin + static_cast<int64_t>(clamp_pos(positions[t], max_pos)) * 2 * half_rot;
      const float4 c = *reinterpret_cast<const float4*>(cs + g);
      const float4 s = *reinterpret_cast<const float4*>(cs + half_rot + g);
      float4 o;
      if (first) {
        const float4 b = row[u + half_rot / 4];
        o.x = rope_first(x.x, b.x, c.x, s.x), o.y = rope_first(x.y, b.y, c.y, s.y), o.z = rope_first(x.z, b.z, c.z, s.z), o.w = rope_first(x.w, b.w, c.w, s.w);
      } else {
        const float4 a = row[u - half_rot / 4];
        o.x = rope_second(a.x, x.x, c.x, s.x), o.y = rope_second(a.y, x.y, c.y, s.y), o.z = rope_second(a.z, x.z, c.z, s.z), o.w = rope_second(a.w, x.w, c.w, s.w);
      }
      x = o;
    }
    if (e < q_width) {
      *reinterpret_cast<float4*>(q + static_cast<int64_t>(t) * q_width + e) = x;
      continue;
    }
    const int slot = slot_mapping[t];
    if (slot < 0 || slot >= num_slots) continue;
    const int c = e - q_width;
    T* cache = c < kv_width ? key_cache : value_cache;
    store4(cache + static_cast<int64_t>(slot) * kv_width + (c < kv_width ? c : c - kv_width), x);
  }
}

template <typename T>
static void launch_typed(const QkvRopeCacheArgs& a, int width, bool vec, gpuStream_t stream) {
  T* kc = static_cast<T*>(a.key_cache);
  T* vc = static_cast<T*>(a.value_cache);
  if (vec) {
    const dim3 blocks(grid_for(width / 4, 256), grid_rows(a.n));
    qkv_rope_cache_vec4_kernel<T><<<blocks, 256, 0, stream>>>(a.qkv, a.positions, a.cos_sin, a.q, kc, vc, a.slot_mapping, a.n, a.num_heads, a.num_kv_heads, a.head_size, a.half_rot, a.max_pos, a.num_slots);
  } else {
    const dim3 blocks(grid_for(width, 256), grid_rows(a.n));
    qkv_rope_cache_kernel<T><<<blocks, 256, 0, stream>>>(a.qkv, a.positions, a.cos_sin, a.q, kc, vc, a.slot_mapping, a.n, a.num_heads, a.num_kv_heads, a.head_size, a.half_rot, a.max_pos, a.num_slots);
  }
}

void qkv_rope_cache(const QkvRopeCacheArgs& a, gpuStream_t stream) {
  const int width = (a.num_heads + 2 * a.num_kv_heads) * a.head_size;
  if (a.n == 0 || width == 0) return;
  // the row offsets of every tensor are then multiples of 16 bytes too (8 for an f16 cache row)
  const bool vec = a.head_size % 4 == 0 && a.half_rot % 4 == 0 && aligned16(a.qkv, a.cos_sin, a.q, a.key_cache, a.value_cache);
  if (a.dtype == kF16) launch_typed<__half>(a, width, vec, stream);
  else launch_typed<float>(a, width, vec, stream);
}

}  // namespace parallm

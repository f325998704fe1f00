// paged_attention: decode attention over the paged KV cache, one query token per sequence
// (shaders/paged_attention.wgsl + paged_attention_reduce.wgsl). Shapes: ops.h AttentionArgs.
//
// A block takes the HPW query heads of one kv head (GQA: each K/V row is loaded once for all
// of them) over one partition of the sequence's context and runs the tile loop of
// attention_tile.cuh. Grid: (partitions, num_kv_heads * head chunks, num_seqs).
//   v1 (partitions == 1): the partition is the whole context and the block writes out.
//   v2: partition p covers positions [p * partition_size, (p + 1) * partition_size); each block
//   writes its un-normalised output, max and sum to part_out / part_ml, and
//   paged_attention_reduce merges them. A partition past the context writes nothing.
// Context lengths are clamped to max_blocks * block_size: the block table cannot say more.
#include <cstdlib>

#include "attention_tile.cuh"

namespace parallm {

constexpr int kDecodeHeadsPerBlock = 8;

template <typename T>
__global__ void __launch_bounds__(kAttnThreads) paged_attention_kernel(AttentionArgs a, int hpw) {
  extern __shared__ __align__(16) char smem[];
  const TileSmem sm = carve(smem, hpw, a.head_size);
  const int part = blockIdx.x, seq = blockIdx.z;
  const int chunks = a.num_heads / a.num_kv_heads / hpw;
  const int kv_head = blockIdx.y / chunks, chunk = blockIdx.y % chunks;
  const int bound = a.max_blocks * a.block_size;
  const int ctx = min(a.context_lens[seq], bound);
  const int k_begin = part * a.partition_size;
  if (a.partitions > 1 && k_begin >= ctx) return;  // the reduce reads only partitions with context
  const int k_end = min(k_begin + a.partition_size, ctx);
  const int head0 = kv_head * (a.num_heads / a.num_kv_heads) + chunk * hpw;
  for (int i = threadIdx.x; i < hpw; i += blockDim.x) sm.row[i] = seq, sm.head[i] = head0 + i, sm.lim[i] = ctx - 1;
  __syncthreads();
  attend(a, static_cast<const T*>(a.key_cache), static_cast<const T*>(a.value_cache), a.block_tables + static_cast<int64_t>(seq) * a.max_blocks, kv_head, hpw, k_begin, k_end, sm);

  const int hs = a.head_size;
  for (int e = threadIdx.x; e < hpw * hs; e += blockDim.x) {
    const int qi = e / hs, d = e % hs, head = head0 + qi;
    if (a.partitions == 1) {
      // an empty context has no softmax: its output is 0
      a.out[static_cast<int64_t>(seq) * a.num_heads * hs + head * hs + d] = sm.l[qi] > 0.f ? sm.acc[e] / sm.l[qi] : 0.f;
    } else {
      const int64_t at = (static_cast<int64_t>(seq) * a.num_heads + head) * a.partitions + part;
      a.part_out[at * hs + d] = sm.acc[e];
      if (d == 0) a.part_ml[2 * at] = sm.m[qi], a.part_ml[2 * at + 1] = sm.l[qi];
    }
  }
}

// The bandwidth path (f16/bf16/f32 caches whose rows split into 16-byte pieces over a
// power-of-two group of G <= kWarp lanes; head size 128 in f16: G = 16). A block of kFastThreads
// takes one query head of one sequence over one partition. Its R = kFastThreads / G lane groups
// walk the partition's keys independently (group j takes keys j, j + R, ...), U keys at a time:
// each lane loads its 16-byte pieces of the U keys' K and V rows at once (2U loads in flight, no
// dependence between them), dots its slice of q with the K pieces and sums over the group by
// shuffles, then folds the U scores into the group's own online softmax (running max, sum and
// output slice, all in registers). There is no barrier in the loop; at the end the R groups'
// partial softmaxes are merged through shared memory. Every K and V byte is read once, in
// 16-byte loads. GQA heads re-read their kv head's rows, mostly from L2.
constexpr int kFastThreads = 128;

/** Lanes per key row of the fast path (16 bytes each), or 0 where it does not apply. */
inline int fast_group(int head_size, int elem_bytes) {
  const int per = 16 / elem_bytes;
  if (head_size % per) return 0;
  const int g = head_size / per;
  if (g > kWarp || g > kFastThreads || (g & (g - 1))) return 0;
  return g;
}

template <typename T>
struct Vec16 {
  static constexpr int N = 16 / sizeof(T);
  __device__ static void widen(const uint4& u, float* out) {
    const T* e = reinterpret_cast<const T*>(&u);
#pragma unroll
    for (int i = 0; i < N; i++) out[i] = to_f32(e[i]);
  }
};

template <typename T, int G, int U>
__global__ void __launch_bounds__(kFastThreads) paged_attention_fast_kernel(AttentionArgs a) {
  constexpr int N = Vec16<T>::N;       // elements per lane
  constexpr int R = kFastThreads / G;  // lane groups, each with its own keys
  __shared__ float red[R * G * N];     // [R, head_size] the groups' output slices
  __shared__ float red_m[R], red_l[R];
  const int part = blockIdx.x, head = blockIdx.y, seq = blockIdx.z;
  const int tid = threadIdx.x, g = tid % G, rg = tid / G;
  const int hs = a.head_size, kvh = a.num_kv_heads;
  const int kv_head = head / (a.num_heads / kvh);
  const int ctx = min(a.context_lens[seq], a.max_blocks * a.block_size);
  const int k_begin = part * a.partition_size;
  if (a.partitions > 1 && k_begin >= ctx) return;  // the reduce reads only partitions with context
  const int k_end = min(k_begin + a.partition_size, ctx);
  const int32_t* table = a.block_tables + static_cast<int64_t>(seq) * a.max_blocks;
  const uint4* kc = static_cast<const uint4*>(a.key_cache);
  const uint4* vc = static_cast<const uint4*>(a.value_cache);
  const int64_t row16 = hs / N;  // 16-byte pieces per row (= G)

  float q[N], acc[N];
  const float* qp = a.q + (static_cast<int64_t>(seq) * a.num_heads + head) * hs + g * N;
#pragma unroll
  for (int i = 0; i < N; i++) q[i] = qp[i] * a.scale, acc[i] = 0.f;
  float m = -INFINITY, l = 0.f;

  // the trip count is the same for every lane (shuffles below need the whole warp)
  for (int base = k_begin; base < k_end; base += R * U) {
    uint4 kr[U], vr[U];
    bool ok[U];
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int p = base + u * R + rg;
      ok[u] = p < k_end;
      if (ok[u]) {
        const int64_t slot = static_cast<int64_t>(table[p / a.block_size]) * a.block_size + p % a.block_size;
        const int64_t at = (slot * kvh + kv_head) * row16 + g;
        kr[u] = kc[at];
        vr[u] = vc[at];
      }
    }
    float sc[U];
    float mx = m;
#pragma unroll
    for (int u = 0; u < U; u++) {
      float d = 0.f;
      if (ok[u]) {
        float k[N];
        Vec16<T>::widen(kr[u], k);
#pragma unroll
        for (int i = 0; i < N; i++) d += q[i] * k[i];
      }
#pragma unroll
      for (int o = G / 2; o > 0; o >>= 1) d += warp_xor(d, o);
      sc[u] = ok[u] ? d : -INFINITY;
      mx = fmaxf(mx, sc[u]);
    }
    if (mx == -INFINITY) continue;  // no key of this group in this round (same for the group's lanes)
    const float alpha = expf(m - mx);  // 0 when m is -inf
    l *= alpha;
#pragma unroll
    for (int i = 0; i < N; i++) acc[i] *= alpha;
#pragma unroll
    for (int u = 0; u < U; u++) {
      if (!ok[u]) continue;
      const float w = expf(sc[u] - mx);
      l += w;
      float v[N];
      Vec16<T>::widen(vr[u], v);
#pragma unroll
      for (int i = 0; i < N; i++) acc[i] += w * v[i];
    }
    m = mx;
  }

  // merge the groups: M = max_j m_j, out = sum_j e^(m_j - M) acc_j / sum_j e^(m_j - M) l_j
#pragma unroll
  for (int i = 0; i < N; i++) red[rg * hs + g * N + i] = acc[i];
  if (g == 0) red_m[rg] = m, red_l[rg] = l;
  __syncthreads();
  float M = -INFINITY;
  for (int j = 0; j < R; j++) M = fmaxf(M, red_m[j]);
  float L = 0.f;
  for (int j = 0; j < R; j++) L += red_m[j] == -INFINITY ? 0.f : expf(red_m[j] - M) * red_l[j];
  for (int d = tid; d < hs; d += kFastThreads) {
    float o = 0.f;
    for (int j = 0; j < R; j++)
      if (red_m[j] != -INFINITY) o += expf(red_m[j] - M) * red[j * hs + d];
    if (a.partitions == 1) {
      // an empty context has no softmax: its output is 0
      a.out[(static_cast<int64_t>(seq) * a.num_heads + head) * hs + d] = L > 0.f ? o / L : 0.f;
    } else {
      const int64_t at = (static_cast<int64_t>(seq) * a.num_heads + head) * a.partitions + part;
      a.part_out[at * hs + d] = o;
      if (d == 0) a.part_ml[2 * at] = M, a.part_ml[2 * at + 1] = L;
    }
  }
}

template <typename T, int G>
static void launch_fast_g(const AttentionArgs& a, const dim3& grid, gpuStream_t stream) {
  // keys in flight per lane group (PARALLM_NATIVE_ATTN_UNROLL, for A/B runs: 4 or 8)
  static const int unroll = [] {
    const char* v = std::getenv("PARALLM_NATIVE_ATTN_UNROLL");
    return v != nullptr && std::atoi(v) == 8 ? 8 : 4;
  }();
  if (unroll == 8) paged_attention_fast_kernel<T, G, 8><<<grid, kFastThreads, 0, stream>>>(a);
  else paged_attention_fast_kernel<T, G, 4><<<grid, kFastThreads, 0, stream>>>(a);
}

template <typename T>
static bool launch_fast(const AttentionArgs& a, gpuStream_t stream) {
  const int G = fast_group(a.head_size, sizeof(T));
  if (!G || !aligned16(a.key_cache, a.value_cache)) return false;
  const dim3 grid(a.partitions, a.num_heads, a.num_seqs);
  switch (G) {
    case 4: launch_fast_g<T, 4>(a, grid, stream); return true;
    case 8: launch_fast_g<T, 8>(a, grid, stream); return true;
    case 16: launch_fast_g<T, 16>(a, grid, stream); return true;
#if PARALLM_WARP >= 32
    case 32: launch_fast_g<T, 32>(a, grid, stream); return true;
#endif
#if PARALLM_WARP >= 64
    case 64: launch_fast_g<T, 64>(a, grid, stream); return true;
#endif
    default: return false;
  }
}

// Partition p of a (sequence, head) left its max m_p, sum l_p and un-normalised output o_p.
// With M = max_p m_p and w_p = exp(m_p - M): out = sum_p w_p o_p / sum_p w_p l_p.
// Grid: (num_heads, num_seqs); each thread owns output elements and walks the partitions.
__global__ void paged_attention_reduce_kernel(AttentionArgs a) {
  const int head = blockIdx.x, seq = blockIdx.y, hs = a.head_size;
  const int ctx = min(a.context_lens[seq], a.max_blocks * a.block_size);
  const int parts = (ctx + a.partition_size - 1) / a.partition_size;
  const int64_t base = (static_cast<int64_t>(seq) * a.num_heads + head) * a.partitions;
  float M = -INFINITY;
  for (int p = 0; p < parts; p++) M = fmaxf(M, a.part_ml[2 * (base + p)]);
  float den = 0.f;
  for (int p = 0; p < parts; p++) den += expf(a.part_ml[2 * (base + p)] - M) * a.part_ml[2 * (base + p) + 1];
  for (int d = threadIdx.x; d < hs; d += blockDim.x) {
    float num = 0.f;
    for (int p = 0; p < parts; p++) num += expf(a.part_ml[2 * (base + p)] - M) * a.part_out[(base + p) * hs + d];
    a.out[static_cast<int64_t>(seq) * a.num_heads * hs + head * hs + d] = den > 0.f ? num / den : 0.f;
  }
}

void paged_attention(const AttentionArgs& a, gpuStream_t stream) {
  if (a.num_seqs == 0) return;
  if (!attention_tile_only()) {
    bool done = false;
    PARALLM_DISPATCH_DTYPE(a.dtype, T, done = launch_fast<T>(a, stream));
    if (done) return;
  }
  const int group = a.num_heads / a.num_kv_heads;
  const int hpw = heads_per_block(group, kDecodeHeadsPerBlock);
  dim3 grid(a.partitions, a.num_kv_heads * (group / hpw), a.num_seqs);
  const size_t smem = attention_smem_bytes(hpw, a.head_size);
  if (a.dtype == kF16) {
    paged_attention_kernel<__half><<<grid, kAttnThreads, smem, stream>>>(a, hpw);
  } else {
    paged_attention_kernel<float><<<grid, kAttnThreads, smem, stream>>>(a, hpw);
  }
}

void paged_attention_reduce(const AttentionArgs& a, gpuStream_t stream) {
  if (a.num_seqs == 0) return;
  paged_attention_reduce_kernel<<<dim3(a.num_heads, a.num_seqs), 128, 0, stream>>>(a);
}

}  // namespace parallm

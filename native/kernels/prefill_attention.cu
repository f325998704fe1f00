// prefill_attention: causal attention for the prefill chunks of several sequences in one
// launch, every key and value (a cached prefix and the chunk's own, already written by
// reshape_and_cache) read from the paged cache (shaders/prefill_attention.wgsl). Sequence s
// owns query rows [query_starts[s], query_starts[s + 1]); with qlen of them, row i sits at
// position context_len - qlen + i and sees keys at positions <= its own. Shapes: ops.h.
//
// Three paths, the first that applies runs: flash attention on the tensor cores
// (prefill_attention_mma.cu: f16 caches, head sizes 64 and 128, NVIDIA only), flash attention on
// the CUDA cores (below: f16 caches, head sizes up to 128; what AMD runs in the tensor cores'
// place), and the tile loop (below: f32 caches, other head sizes). PARALLM_NATIVE_ATTN_MMA=0
// skips the first, PARALLM_NATIVE_ATTN_TILE the first two (A/B runs).
//
// The tile loop: a block takes a tile of bq query rows of one sequence times hpw query heads of one kv head
// and runs the tile loop of attention_tile.cuh over keys [0, position of its last row]. The
// host cannot read query_starts (device data) without a sync, so it launches an upper bound
// of query tiles, floor((num_tokens + num_seqs * (bq - 1)) / bq); a block finds its (sequence,
// tile) by one thread scanning query_starts and the spare blocks exit.
// Grid: (tiles, num_kv_heads * head chunks).
#include <cstring>

#include "attention_tile.cuh"

namespace parallm {

constexpr int kPrefillHeadsPerBlock = 8;
constexpr int kPrefillQueryBytes = 4096;  // queries per block: bq * hpw * head_size * 4 bytes

template <typename T>
__global__ void __launch_bounds__(kAttnThreads) prefill_attention_kernel(AttentionArgs a, int hpw, int bq) {
  extern __shared__ __align__(16) char smem[];
  __shared__ int where[3];  // sequence, first local row, rows in this tile
  const int nq = bq * hpw;
  const TileSmem sm = carve(smem, nq, a.head_size);
  find_query_tile(a, bq, blockIdx.x, where);
  const int seq = where[0];
  if (seq < 0) return;  // a spare block of the upper bound
  const int first = where[1], rows = where[2];
  const int chunks = a.num_heads / a.num_kv_heads / hpw;
  const int kv_head = blockIdx.y / chunks, chunk = blockIdx.y % chunks;
  const int head0 = kv_head * (a.num_heads / a.num_kv_heads) + chunk * hpw;
  const int q0 = a.query_starts[seq];
  const int qlen = a.query_starts[seq + 1] - q0;
  const int ctx = min(a.context_lens[seq], a.max_blocks * a.block_size);
  for (int i = threadIdx.x; i < nq; i += blockDim.x) {
    const int r = i / hpw, h = i % hpw;
    sm.row[i] = q0 + first + min(r, rows - 1);
    sm.head[i] = head0 + h;
    sm.lim[i] = r < rows ? ctx - qlen + first + r : -1;
  }
  __syncthreads();
  const int k_end = min(ctx - qlen + first + rows, ctx);
  attend(a, static_cast<const T*>(a.key_cache), static_cast<const T*>(a.value_cache), a.block_tables + static_cast<int64_t>(seq) * a.max_blocks, kv_head, nq, 0, k_end, sm);

  const int hs = a.head_size;
  for (int e = threadIdx.x; e < nq * hs; e += blockDim.x) {
    const int qi = e / hs, d = e % hs;
    if (sm.lim[qi] < 0) continue;
    a.out[static_cast<int64_t>(sm.row[qi]) * a.num_heads * hs + sm.head[qi] * hs + d] = sm.l[qi] > 0.f ? sm.acc[e] / sm.l[qi] : 0.f;
  }
}

// The CUDA-core path for f16 caches with head sizes up to 128 (a multiple of 8): flash attention
// on the CUDA cores. A block of kPfThreads takes kPfRows query rows of one sequence and one query
// head, and walks the keys they see in tiles of kPfKeys: the K tile is staged in shared memory
// (16-byte global loads, rows padded by one word so that a row per lane hits distinct banks), each
// thread computes a 2 x 4 patch of the scores from f32 queries and f16 keys (half2 pairs), a group
// of 8 lanes per row folds the tile into the row's online softmax, then the V tile replaces the K
// tile and each thread adds P V into its 2 rows x 8 dims of the output, in registers. Each staged
// K or V row serves kPfRows queries (the tile loop serves 8), and the products come from shared
// memory in 4- and 8-byte words.
constexpr int kPfThreads = 256;
constexpr int kPfRows = 32;
constexpr int kPfKeys = 64;
constexpr int kPfMaxHead = 128;
constexpr int kPfKvStride = kPfMaxHead / 2 + 1;  // 32-bit words per staged K/V row
constexpr int kPfSStride = kPfKeys + 1;

struct PfHalf2 {
  float x, y;
};
__device__ __forceinline__ PfHalf2 pf_unpack(unsigned w) {
  __half h[2];
  memcpy(h, &w, 4);
  return {__half2float(h[0]), __half2float(h[1])};
}

__global__ void __launch_bounds__(kPfThreads) prefill_attention_fast_kernel(AttentionArgs a) {
  __shared__ float qs[kPfRows * kPfMaxHead];       // queries, pre-scaled
  __shared__ unsigned kv[kPfKeys * kPfKvStride];   // the K tile, then the V tile (half2 words)
  __shared__ float ss[kPfRows * kPfSStride];       // scores, then weights
  __shared__ float row_m[kPfRows], row_l[kPfRows], row_a[kPfRows];
  __shared__ int64_t slot[kPfKeys];
  __shared__ int where[3];
  const int tid = threadIdx.x, hs = a.head_size, hw = hs / 2, head = blockIdx.y;
  find_query_tile(a, kPfRows, blockIdx.x, where);
  const int seq = where[0];
  if (seq < 0) return;  // a spare block of the upper bound
  const int first = where[1], rows = where[2];
  const int kvh = a.num_kv_heads, kv_head = head / (a.num_heads / kvh);
  const int q0 = a.query_starts[seq], qlen = a.query_starts[seq + 1] - q0;
  const int ctx = min(a.context_lens[seq], a.max_blocks * a.block_size);
  const int pos0 = ctx - qlen + first;  // position of the tile's first row
  const int k_end = min(pos0 + rows, ctx);
  const int32_t* table = a.block_tables + static_cast<int64_t>(seq) * a.max_blocks;
  const uint4* kc = static_cast<const uint4*>(a.key_cache);
  const uint4* vc = static_cast<const uint4*>(a.value_cache);
  const int row16 = hs / 8;  // 16-byte pieces per K/V row

  for (int e = tid; e < kPfRows * hs; e += kPfThreads) {
    const int r = e / hs, d = e % hs;
    qs[r * kPfMaxHead + d] = r < rows ? a.q[static_cast<int64_t>(q0 + first + r) * a.num_heads * hs + head * hs + d] * a.scale : 0.f;
  }
  if (tid < kPfRows) row_m[tid] = -INFINITY, row_l[tid] = 0.f;

  // scores: thread (rg, kg) has rows 2rg, 2rg + 1 and keys kg + 16j; output: rows 2rg, 2rg + 1
  // and the half2 words kg + 16j (dims 2(kg + 16j), +1)
  const int rg = tid / 16, kg = tid % 16;
  float acc[2][8];
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < 8; j++) acc[i][j] = 0.f;

  auto stage = [&](const uint4* src, int t0, int nk) {
    for (int e = tid; e < kPfKeys * row16; e += kPfThreads) {
      const int c = e / row16, piece = e % row16;
      uint4 u = make_uint4(0u, 0u, 0u, 0u);
      if (c < nk) u = src[(slot[c] * kvh + kv_head) * row16 + piece];
      unsigned* dst = kv + c * kPfKvStride + piece * 4;
      dst[0] = u.x, dst[1] = u.y, dst[2] = u.z, dst[3] = u.w;
    }
  };

  for (int t0 = 0; t0 < k_end; t0 += kPfKeys) {
    const int nk = min(kPfKeys, k_end - t0);
    if (tid < nk) {
      const int p = t0 + tid;
      slot[tid] = static_cast<int64_t>(table[p / a.block_size]) * a.block_size + p % a.block_size;
    }
    __syncthreads();  // slots; the previous tile's PV is done with kv
    stage(kc, t0, nk);
    __syncthreads();

    float sc[2][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
      for (int j = 0; j < 4; j++) sc[i][j] = 0.f;
    for (int w = 0; w < hw; w++) {
      const float2 qa = *reinterpret_cast<const float2*>(&qs[(2 * rg) * kPfMaxHead + 2 * w]);
      const float2 qb = *reinterpret_cast<const float2*>(&qs[(2 * rg + 1) * kPfMaxHead + 2 * w]);
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const PfHalf2 k = pf_unpack(kv[(kg + 16 * j) * kPfKvStride + w]);
        sc[0][j] += qa.x * k.x + qa.y * k.y;
        sc[1][j] += qb.x * k.x + qb.y * k.y;
      }
    }
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const int r = 2 * rg + i, c = kg + 16 * j;
        ss[r * kPfSStride + c] = (c < nk && t0 + c <= pos0 + r) ? sc[i][j] : -INFINITY;
      }
    __syncthreads();  // scores written; K no longer needed

    stage(vc, t0, nk);  // V replaces K while the rows' softmax runs
    {
      const int r = tid / 8, sub = tid % 8;
      float mx = -INFINITY;
      for (int c = sub; c < kPfKeys; c += 8) mx = fmaxf(mx, ss[r * kPfSStride + c]);
#pragma unroll
      for (int o = 4; o > 0; o >>= 1) mx = fmaxf(mx, warp_xor(mx, o));
      const float m_old = row_m[r];
      const float m_new = fmaxf(m_old, mx);
      float sum = 0.f;
      for (int c = sub; c < kPfKeys; c += 8) {
        const float w = m_new == -INFINITY ? 0.f : expf(ss[r * kPfSStride + c] - m_new);
        ss[r * kPfSStride + c] = w;
        sum += w;
      }
#pragma unroll
      for (int o = 4; o > 0; o >>= 1) sum += warp_xor(sum, o);
      if (sub == 0) {
        const float alpha = m_new == -INFINITY ? 1.f : expf(m_old - m_new);
        row_a[r] = alpha;
        row_l[r] = row_l[r] * alpha + sum;
        row_m[r] = m_new;
      }
    }
    __syncthreads();  // weights, the rows' rescale and the V tile are ready

#pragma unroll
    for (int i = 0; i < 2; i++) {
      const float al = row_a[2 * rg + i];
#pragma unroll
      for (int j = 0; j < 8; j++) acc[i][j] *= al;
    }
    for (int c = 0; c < nk; c++) {
      const float p0 = ss[(2 * rg) * kPfSStride + c], p1 = ss[(2 * rg + 1) * kPfSStride + c];
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const int w = kg + 16 * j;
        if (w < hw) {
          const PfHalf2 v = pf_unpack(kv[c * kPfKvStride + w]);
          acc[0][2 * j] += p0 * v.x, acc[0][2 * j + 1] += p0 * v.y;
          acc[1][2 * j] += p1 * v.x, acc[1][2 * j + 1] += p1 * v.y;
        }
      }
    }
  }
  __syncthreads();
#pragma unroll
  for (int i = 0; i < 2; i++) {
    const int r = 2 * rg + i;
    if (r >= rows) continue;
    const float l = row_l[r];
    float* o = a.out + static_cast<int64_t>(q0 + first + r) * a.num_heads * hs + head * hs;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int w = kg + 16 * j;
      if (w < hw) {
        o[2 * w] = l > 0.f ? acc[i][2 * j] / l : 0.f;
        o[2 * w + 1] = l > 0.f ? acc[i][2 * j + 1] / l : 0.f;
      }
    }
  }
}

// The tensor-core path (prefill_attention_mma.cu): f16 caches, head sizes 64 and 128, NVIDIA only;
// false where it does not apply (or PARALLM_NATIVE_ATTN_MMA=0), and the paths below run.
bool prefill_attention_mma(const AttentionArgs& a, gpuStream_t stream);

void prefill_attention(const AttentionArgs& a, gpuStream_t stream) {
  if (a.num_tokens == 0 || a.num_seqs == 0) return;
  if (!attention_tile_only() && prefill_attention_mma(a, stream)) return;
  if (!attention_tile_only() && a.dtype == kF16 && a.head_size % 8 == 0 && a.head_size <= kPfMaxHead && aligned16(a.key_cache, a.value_cache)) {
    prefill_attention_fast_kernel<<<dim3(static_cast<unsigned>(prefill_tiles(a, kPfRows)), a.num_heads), kPfThreads, 0, stream>>>(a);
    return;
  }
  const int group = a.num_heads / a.num_kv_heads;
  const int hpw = heads_per_block(group, kPrefillHeadsPerBlock);
  const int per_row = hpw * a.head_size * static_cast<int>(sizeof(float));
  const int bq = per_row >= kPrefillQueryBytes ? 1 : kPrefillQueryBytes / per_row;
  dim3 grid(static_cast<unsigned>(prefill_tiles(a, bq)), a.num_kv_heads * (group / hpw));
  const size_t smem = attention_smem_bytes(bq * hpw, a.head_size);
  if (a.dtype == kF16) {
    prefill_attention_kernel<__half><<<grid, kAttnThreads, smem, stream>>>(a, hpw, bq);
  } else {
    prefill_attention_kernel<float><<<grid, kAttnThreads, smem, stream>>>(a, hpw, bq);
  }
}

}  // namespace parallm

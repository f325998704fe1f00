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

// prefill_attention: causal attention for the prefill chunks of several sequences in one
// launch, every key and value (a cached prefix and the chunk's own, already written by
// reshape_and_cache) read from the paged cache (shaders/prefill_attention.wgsl). Sequence s
// owns query rows [query_starts[s], query_starts[s + 1]); with qlen of them, row i sits at
// position context_len - qlen + i and sees keys at positions <= its own. Shapes: ops.h.
//
// A block takes a tile of bq query rows of one sequence times hpw query heads of one kv head
// and runs the tile loop of attention_tile.cuh over keys [0, position of its last row]. The
// host cannot read query_starts (device data) without a sync, so it launches an upper bound
// of query tiles, floor((num_tokens + num_seqs * (bq - 1)) / bq); a block finds its (sequence,
// tile) by one thread scanning query_starts and the spare blocks exit.
// Grid: (tiles, num_kv_heads * head chunks).
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
  if (threadIdx.x == 0) {
    where[0] = -1;
    int tile = blockIdx.x;
    for (int s = 0; s < a.num_seqs; s++) {
      const int qlen = a.query_starts[s + 1] - a.query_starts[s];
      const int tiles = (qlen + bq - 1) / bq;
      if (tile < tiles) {
        where[0] = s, where[1] = tile * bq, where[2] = min(bq, qlen - tile * bq);
        break;
      }
      tile -= tiles;
    }
  }
  __syncthreads();
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

void prefill_attention(const AttentionArgs& a, gpuStream_t stream) {
  if (a.num_tokens == 0 || a.num_seqs == 0) return;
  const int group = a.num_heads / a.num_kv_heads;
  const int hpw = heads_per_block(group, kPrefillHeadsPerBlock);
  const int per_row = hpw * a.head_size * static_cast<int>(sizeof(float));
  const int bq = per_row >= kPrefillQueryBytes ? 1 : kPrefillQueryBytes / per_row;
  const int64_t tiles = (static_cast<int64_t>(a.num_tokens) + static_cast<int64_t>(a.num_seqs) * (bq - 1)) / bq;
  dim3 grid(static_cast<unsigned>(tiles), a.num_kv_heads * (group / hpw));
  const size_t smem = attention_smem_bytes(bq * hpw, a.head_size);
  if (a.dtype == kF16) {
    prefill_attention_kernel<__half><<<grid, kAttnThreads, smem, stream>>>(a, hpw, bq);
  } else {
    prefill_attention_kernel<float><<<grid, kAttnThreads, smem, stream>>>(a, hpw, bq);
  }
}

}  // namespace parallm

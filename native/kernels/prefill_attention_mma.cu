// prefill_attention on the tensor cores (mma.cuh: NVIDIA, and the emulator at warp 32): flash
// attention 2 for f16 caches and head sizes 64 and 128. prefill_attention.cu holds the op's
// contract and the CUDA-core paths that take every other case (and every case on AMD).
//
// A block of 4 warps takes 64 query rows of one sequence and one query head; each warp owns 16
// rows and keeps them in registers from start to end: its queries as f16 A fragments (rounded
// once, unscaled), its output as f32 accumulators, and each row's running max and sum. Per tile
// of 64 keys: S = Q K^T on the tensor cores (K from shared memory through ldmatrix), the causal
// mask and the online softmax on the accumulators in registers (a row's 16 values live on the 4
// lanes of a quad), then P, rounded to f16 in the same registers, times V (ldmatrix.trans). K and
// V tiles arrive by cp.async: V lands while S and the softmax run, the next K while P V runs, so
// a tile costs two barriers. A warp skips the 16-key blocks past its last row's position: on the
// diagonal a warp computes one or two partly masked 16 x 16 blocks, not a 64 x 64 square.
//
// Grid: (upper bound of query tiles, heads). Blocks take the tiles last to first: in a sequence
// the last tiles see the most keys, and the launch's tail is then the short work.
#include <cstdlib>
#include <cstring>

#include "attention_tile.cuh"
#include "mma.cuh"

namespace parallm {

#if PARALLM_MMA

constexpr int kMmaWarps = 4;
constexpr int kMmaThreads = 32 * kMmaWarps;
constexpr int kMmaRows = 16 * kMmaWarps;  // query rows per block
constexpr int kMmaKeys = 64;              // keys per tile

// q: [num_tokens, num_heads * D] f32; caches: [num_blocks, block_size, num_kv_heads, D] f16;
// out: [num_tokens, num_heads * D] f32
template <int D>
__global__ void __launch_bounds__(kMmaThreads) prefill_attention_mma_kernel(AttentionArgs a) {
  constexpr int LD = D + 8;           // halves per staged row: 16 bytes of padding put an ldmatrix's 8 rows on distinct banks
  constexpr int kDB = D / 16;         // 16-wide blocks of a head
  constexpr int kKB = kMmaKeys / 16;  // 16-key blocks of a tile
  constexpr int kPieces = D / 8;      // 16-byte pieces of a K or V row
  // f16 rows of LD halves, declared as 16-byte words for the alignment ldmatrix and cp.async need
  __shared__ uint4 k_tile[kMmaKeys * LD / 8];  // the K tile
  __shared__ uint4 v_tile[kMmaKeys * LD / 8];  // the V tile; the block's queries before the first
  __half* ks = reinterpret_cast<__half*>(k_tile);
  __half* vs = reinterpret_cast<__half*>(v_tile);
  __shared__ int64_t kslot[2][kMmaKeys];  // element offset of each key's K/V row, by tile parity
  __shared__ int where[3];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  find_query_tile(a, kMmaRows, static_cast<int>(gridDim.x - 1 - blockIdx.x), where);
  const int seq = where[0];
  if (seq < 0) return;  // a spare block of the upper bound
  const int first = where[1], rows = where[2];
  const int head = blockIdx.y, kvh = a.num_kv_heads, kv_head = head / (a.num_heads / kvh);
  const int q0 = a.query_starts[seq], qlen = a.query_starts[seq + 1] - q0;
  const int ctx = min(a.context_lens[seq], a.max_blocks * a.block_size);
  const int pos0 = ctx - qlen + first;  // position of the block's first row
  const int k_end = min(pos0 + rows, ctx);
  const int32_t* table = a.block_tables + static_cast<int64_t>(seq) * a.max_blocks;
  const __half* kc = static_cast<const __half*>(a.key_cache);
  const __half* vc = static_cast<const __half*>(a.value_cache);
  const int64_t q_width = static_cast<int64_t>(a.num_heads) * D;

  // this lane's rows are 16 warp + g and + 8; lim: the last key position a row sees (-1: no row)
  const int r0 = 16 * warp + g, r1 = r0 + 8;
  const int lim0 = r0 < rows ? pos0 + r0 : -1, lim1 = r1 < rows ? pos0 + r1 : -1;
  const int wlim = 16 * warp < rows ? pos0 + min(16 * warp + 15, rows - 1) : -1;  // the warp's last
  const int lim_min = min(lim0, lim1);

  auto find_slots = [&](int t0, int64_t* slot) {
    if (tid < kMmaKeys && t0 + tid < k_end) {
      const int p = t0 + tid;
      slot[tid] = ((static_cast<int64_t>(table[p / a.block_size]) * a.block_size + p % a.block_size) * kvh + kv_head) * D;
    }
  };
  // K or V rows of the tile at t0 into dst; rows past k_end are zeros (the cache's slots there
  // may hold anything, NaN included, and a zero weight times NaN is NaN)
  auto stage = [&](__half* dst, const __half* cache, int t0, const int64_t* slot) {
    for (int e = tid; e < kMmaKeys * kPieces; e += kMmaThreads) {
      const int c = e / kPieces, piece = e % kPieces;
      const bool valid = t0 + c < k_end;
      cp_async16(dst + c * LD + piece * 8, valid ? cache + slot[c] + piece * 8 : cache, valid);
    }
  };

  find_slots(0, kslot[0]);
  // the queries, rounded to f16 once, through vs into each warp's A fragments
  for (int e = tid; e < kMmaRows * D / 2; e += kMmaThreads) {
    const int r = e / (D / 2), w = e % (D / 2);
    float x = 0.f, y = 0.f;
    if (r < rows) {
      const float* q = a.q + (q0 + first + r) * q_width + head * D + 2 * w;
      x = q[0], y = q[1];
    }
    *reinterpret_cast<unsigned*>(vs + r * LD + 2 * w) = pack_half2(x, y);
  }
  __syncthreads();  // slots of tile 0, queries staged
  stage(ks, kc, 0, kslot[0]);
  FragA qf[kDB];
#pragma unroll
  for (int d = 0; d < kDB; d++) frag_load_a(qf[d], vs + 16 * warp * LD + 16 * d, LD);

  FragC o[kDB];
#pragma unroll
  for (int d = 0; d < kDB; d++) frag_zero(o[d]);
  // rows r0 and r1: running max of the scores in log2 units (scale * log2 e folded in), and this
  // lane's part of the running sum (the quad's four parts are added at the end)
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
  const float scale2 = a.scale * 1.44269504088896341f;

  for (int t0 = 0, par = 0; t0 < k_end; t0 += kMmaKeys, par ^= 1) {
    cp_async_wait_all();
    __syncthreads();  // the K tile is in; every warp is done with vs (queries or the last V tile)
    stage(vs, vc, t0, kslot[par]);  // lands while S and the softmax run
    find_slots(t0 + kMmaKeys, kslot[par ^ 1]);

    // S = Q K^T, 16 keys at a time, none past the warp's last row
    FragC s[kKB];
#pragma unroll
    for (int j = 0; j < kKB; j++) {
      frag_zero(s[j]);
      if (t0 + 16 * j > wlim) continue;
#pragma unroll
      for (int d = 0; d < kDB; d++) {
        FragB kb;
        frag_load_b_cols(kb, ks + 16 * j * LD + 16 * d, LD);
        frag_mma(s[j], qf[d], kb);
      }
    }

    // the causal mask (keys past a row's position, k_end and the skipped blocks among them);
    // element i of s[j] is row i & 2 ? r1 : r0, key t0 + 16 j + 2 t + (i & 1) + (i & 4 ? 8 : 0)
    if (t0 + kMmaKeys - 1 > lim_min) {
#pragma unroll
      for (int j = 0; j < kKB; j++)
#pragma unroll
        for (int i = 0; i < 8; i++) {
          const int key = t0 + 16 * j + 2 * t + (i & 1) + (i & 4 ? 8 : 0);
          if (key > (i & 2 ? lim1 : lim0)) s[j].x[i] = -INFINITY;
        }
    }

    // the online softmax of rows r0 and r1 over this tile (each row's 64 scores: 16 per lane of a quad)
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int j = 0; j < kKB; j++)
#pragma unroll
      for (int i = 0; i < 8; i++) {
        if (i & 2) mx1 = fmaxf(mx1, s[j].x[i]);
        else mx0 = fmaxf(mx0, s[j].x[i]);
      }
#pragma unroll
    for (int o2 = 1; o2 <= 2; o2 <<= 1) mx0 = fmaxf(mx0, warp_xor(mx0, o2)), mx1 = fmaxf(mx1, warp_xor(mx1, o2));
    const float n0 = fmaxf(m0, mx0 * scale2), n1 = fmaxf(m1, mx1 * scale2);
    // a row with every key so far masked adds nothing and rescales nothing (no exp(-inf - -inf))
    const float al0 = n0 == -INFINITY ? 1.f : exp2f(m0 - n0), al1 = n1 == -INFINITY ? 1.f : exp2f(m1 - n1);
    const float sub0 = n0 == -INFINITY ? 0.f : n0, sub1 = n1 == -INFINITY ? 0.f : n1;
    m0 = n0, m1 = n1;
    float sum0 = 0.f, sum1 = 0.f;
    FragA pf[kKB];
#pragma unroll
    for (int j = 0; j < kKB; j++) {
#pragma unroll
      for (int i = 0; i < 8; i++) {
        const float p = exp2f(fmaf(s[j].x[i], scale2, -(i & 2 ? sub1 : sub0)));  // exp2(-inf) = 0
        s[j].x[i] = p;
        if (i & 2) sum1 += p;
        else sum0 += p;
      }
      pf[j] = frag_a_from(s[j]);
    }
    l0 = l0 * al0 + sum0, l1 = l1 * al1 + sum1;
#pragma unroll
    for (int d = 0; d < kDB; d++)
#pragma unroll
      for (int i = 0; i < 8; i++) o[d].x[i] *= i & 2 ? al1 : al0;

    cp_async_wait_all();
    __syncthreads();  // the V tile is in; every warp is done with ks
    if (t0 + kMmaKeys < k_end) stage(ks, kc, t0 + kMmaKeys, kslot[par ^ 1]);  // lands while P V runs

    // O += P V, 16 keys at a time, none past the warp's last row
#pragma unroll
    for (int j = 0; j < kKB; j++) {
      if (t0 + 16 * j > wlim) continue;
#pragma unroll
      for (int d = 0; d < kDB; d++) {
        FragB vb;
        frag_load_b_rows(vb, vs + 16 * j * LD + 16 * d, LD);
        frag_mma(o[d], pf[j], vb);
      }
    }
  }

#pragma unroll
  for (int o2 = 1; o2 <= 2; o2 <<= 1) l0 += warp_xor(l0, o2), l1 += warp_xor(l1, o2);
  const float inv0 = l0 > 0.f ? 1.f / l0 : 0.f, inv1 = l1 > 0.f ? 1.f / l1 : 0.f;
  float* out0 = a.out + (q0 + first + r0) * q_width + head * D;
  float* out1 = out0 + 8 * q_width;
#pragma unroll
  for (int d = 0; d < kDB; d++)
#pragma unroll
    for (int i = 0; i < 8; i++) {
      const int col = 16 * d + 2 * t + (i & 1) + (i & 4 ? 8 : 0);
      if (i & 2) {
        if (r1 < rows) out1[col] = o[d].x[i] * inv1;
      } else if (r0 < rows) {
        out0[col] = o[d].x[i] * inv0;
      }
    }
}

// PARALLM_NATIVE_ATTN_MMA=0: prefill takes the CUDA-core flash path instead (A/B runs)
static bool mma_off() {
  static const bool off = [] {
    const char* v = std::getenv("PARALLM_NATIVE_ATTN_MMA");
    return v != nullptr && std::strcmp(v, "0") == 0;
  }();
  return off;
}

bool prefill_attention_mma(const AttentionArgs& a, gpuStream_t stream) {
  if (mma_off() || a.dtype != kF16 || (a.head_size != 64 && a.head_size != 128) || !aligned16(a.key_cache, a.value_cache)) return false;
  const dim3 grid(static_cast<unsigned>(prefill_tiles(a, kMmaRows)), a.num_heads);
  if (a.head_size == 64) prefill_attention_mma_kernel<64><<<grid, kMmaThreads, 0, stream>>>(a);
  else prefill_attention_mma_kernel<128><<<grid, kMmaThreads, 0, stream>>>(a);
  return true;
}

#else

bool prefill_attention_mma(const AttentionArgs&, gpuStream_t) { return false; }  // no tensor-core API here (mma.cuh)

#endif  // PARALLM_MMA

}  // namespace parallm

// The tile loop that paged_attention and prefill_attention share (as the WGSL kernels share
// shaders/paged_attention_tile.wgsl): one block holds NQ queries that use one kv head (query
// rows x query heads of a GQA group) and walks a range of key positions of one sequence in
// tiles of kTileKeys keys through its block table, with an online softmax per query.
//
// Per tile: (1) each warp takes keys, loads its K row once into registers and dots it with
// every query (K is read once per kv head, not once per query head); (2) one warp per query
// updates the running max and sum and turns the tile's scores into weights; (3) each thread
// owns output elements and adds the tile's weighted V rows, which threads read row by row,
// coalesced. Causality is a per-query key limit: keys past it score -inf.
#pragma once

#include <cstdlib>

#include "ops.h"
#include "portable.cuh"

namespace parallm {

constexpr int kAttnThreads = 128;
constexpr int kTileKeys = 32;  // <= the warp width: one lane per key in step (2)
static_assert(kTileKeys <= kWarp, "a tile's scores are reduced by one warp");
constexpr int kKeyRegs = (kMaxHeadSize + kWarp - 1) / kWarp;

/** Shared memory of one block holding nq queries of head size hs, in bytes (see carve below). */
inline size_t attention_smem_bytes(int nq, int hs) {
  return sizeof(int64_t) * kTileKeys + sizeof(float) * (2 * nq * hs + nq * kTileKeys + 3 * nq) + sizeof(int) * 3 * nq;
}

struct TileSmem {
  int64_t* kslot;  // [kTileKeys] element offset of each key's row for this kv head
  float* q;        // [nq, hs] queries, pre-multiplied by the scale
  float* acc;      // [nq, hs] un-normalised outputs
  float* s;        // [nq, kTileKeys] scores, then weights
  float* m;        // [nq] running max
  float* l;        // [nq] running sum
  float* alpha;    // [nq] this tile's rescale of acc
  int* row;        // [nq] q row of each query
  int* head;       // [nq] query head of each query
  int* lim;        // [nq] last key position each query sees (-1: not a query)
};

__device__ inline TileSmem carve(char* base, int nq, int hs) {
  TileSmem t;
  t.kslot = reinterpret_cast<int64_t*>(base);
  float* f = reinterpret_cast<float*>(base + sizeof(int64_t) * kTileKeys);
  t.q = f;
  t.acc = t.q + nq * hs;
  t.s = t.acc + nq * hs;
  t.m = t.s + nq * kTileKeys;
  t.l = t.m + nq;
  t.alpha = t.l + nq;
  int* i = reinterpret_cast<int*>(t.alpha + nq);
  t.row = i;
  t.head = i + nq;
  t.lim = i + 2 * nq;
  return t;
}

/**
 * Runs the tile loop over key positions [k_begin, k_end) of the sequence whose block table is
 * `table`, for the nq queries described in sm.row / sm.head / sm.lim (filled and synchronised
 * by the caller). Leaves sm.acc, sm.m and sm.l for the caller to write out.
 */
template <typename T>
__device__ void attend(const AttentionArgs& a, const T* kc, const T* vc, const int32_t* table, int kv_head, int nq, int k_begin, int k_end, const TileSmem& sm) {
  const int hs = a.head_size, tid = threadIdx.x, lane = tid % kWarp, warp = tid / kWarp, warps = blockDim.x / kWarp;
  const int q_width = a.num_heads * hs;
  for (int e = tid; e < nq * hs; e += blockDim.x) {
    const int qi = e / hs, d = e % hs;
    sm.q[e] = sm.lim[qi] >= 0 ? a.q[static_cast<int64_t>(sm.row[qi]) * q_width + sm.head[qi] * hs + d] * a.scale : 0.f;
    sm.acc[e] = 0.f;
  }
  for (int qi = tid; qi < nq; qi += blockDim.x) sm.m[qi] = -INFINITY, sm.l[qi] = 0.f;
  __syncthreads();

  for (int t0 = k_begin; t0 < k_end; t0 += kTileKeys) {
    const int nk = min(kTileKeys, k_end - t0);
    if (tid < nk) {
      const int p = t0 + tid;
      const int64_t slot = static_cast<int64_t>(table[p / a.block_size]) * a.block_size + p % a.block_size;
      sm.kslot[tid] = (slot * a.num_kv_heads + kv_head) * hs;
    }
    __syncthreads();

    // (1) scores: a warp per key
    for (int j = warp; j < nk; j += warps) {
      float kr[kKeyRegs];
#pragma unroll
      for (int i = 0; i < kKeyRegs; i++) {
        const int d = lane + i * kWarp;
        kr[i] = d < hs ? to_f32(kc[sm.kslot[j] + d]) : 0.f;
      }
      for (int qi = 0; qi < nq; qi++) {
        float part = 0.f;
#pragma unroll
        for (int i = 0; i < kKeyRegs; i++) {
          const int d = lane + i * kWarp;
          if (d < hs) part += sm.q[qi * hs + d] * kr[i];
        }
        part = warp_sum(part);
        if (lane == 0) sm.s[qi * kTileKeys + j] = t0 + j <= sm.lim[qi] ? part : -INFINITY;
      }
    }
    __syncthreads();

    // (2) online softmax: a warp per query, a lane per key
    for (int qi = warp; qi < nq; qi += warps) {
      const float sc = lane < nk ? sm.s[qi * kTileKeys + lane] : -INFINITY;
      const float m_old = sm.m[qi];
      const float m_new = fmaxf(m_old, warp_max(sc));
      // all keys so far masked: nothing to add, nothing to rescale (and no exp(-inf - -inf))
      const float w = m_new == -INFINITY ? 0.f : expf(sc - m_new);
      const float alpha = m_new == -INFINITY ? 1.f : expf(m_old - m_new);
      const float sum = warp_sum(w);
      if (lane < nk) sm.s[qi * kTileKeys + lane] = w;
      if (lane == 0) {
        sm.l[qi] = sm.l[qi] * alpha + sum;
        sm.m[qi] = m_new;
        sm.alpha[qi] = alpha;
      }
    }
    __syncthreads();

    // (3) weighted V rows into the accumulators
    for (int e = tid; e < nq * hs; e += blockDim.x) {
      const int qi = e / hs, d = e % hs;
      float acc = sm.acc[e] * sm.alpha[qi];
      for (int j = 0; j < nk; j++) acc += sm.s[qi * kTileKeys + j] * to_f32(vc[sm.kslot[j] + d]);
      sm.acc[e] = acc;
    }
    __syncthreads();
  }
}

// prefill_attention's blocks: the (sequence, first row, rows) of query tile `tile` of bq rows, the
// tiles of every sequence numbered in order; a spare tile of the launch's upper bound gets
// sequence -1. One thread scans query_starts; every thread of the block must call it (it holds a
// barrier).
__device__ inline void find_query_tile(const AttentionArgs& a, int bq, int tile, int* where) {
  if (threadIdx.x == 0) {
    where[0] = -1;
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
}

/** prefill_attention's launch: an upper bound of its query tiles of bq rows (the host cannot read query_starts without a sync). */
inline int64_t prefill_tiles(const AttentionArgs& a, int bq) {
  return (static_cast<int64_t>(a.num_tokens) + static_cast<int64_t>(a.num_seqs) * (bq - 1)) / bq;
}

/** PARALLM_NATIVE_ATTN_TILE set: both attention ops run this tile loop alone (A/B runs of their fast paths). */
inline bool attention_tile_only() {
  static const bool on = std::getenv("PARALLM_NATIVE_ATTN_TILE") != nullptr;
  return on;
}

/** Largest divisor of `group` not above `cap`: query heads of one kv head in one block. */
inline int heads_per_block(int group, int cap) {
  for (int h = group < cap ? group : cap; h > 1; h--)
    if (group % h == 0) return h;
  return 1;
}

}  // namespace parallm

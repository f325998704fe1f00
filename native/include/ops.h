// The kernels' host entry points: one struct of arguments per op (pointers into the device
// arena, sizes, and the names of the WGSL kernels' params) and one launcher per kernel, which
// enqueues on `stream` and returns at once. Shapes follow src/device/ops.ts; dtype codes are
// those of DType below. The Node-API glue (src/launch.cpp) fills these structs from the
// positional argument arrays that src/device/native/ops.ts encodes by the glue's layouts.
#pragma once

#include <stdint.h>

#include "gpu_runtime.h"

namespace parallm {

/** Storage type of weights, tables and KV caches. */
enum DType : int { kF32 = 0, kF16 = 1, kBF16 = 2 };

// ids: [n] i32, table: [vocab, hidden] dtype, out: [n, hidden] f32
struct EmbeddingArgs {
  const int32_t* ids;
  const void* table;
  float* out;
  int n, hidden, vocab, dtype;
};
void embedding(const EmbeddingArgs& a, gpuStream_t stream);

// x, residual: [n, hidden] f32 (residual may be null); weight: [hidden] dtype; out: [n, hidden]
// out_dtype (f32, which may alias x; or f16 | bf16, rounded from f32: a BLAS gemm's activations)
struct RmsNormArgs {
  const float* x;
  const void* weight;
  void* out;
  float* residual;
  int n, hidden, dtype, out_dtype;
  float eps;
};
void rms_norm(const RmsNormArgs& a, gpuStream_t stream);

// x: [n, width] f32 in place; positions: [n] i32; cos_sin: [max_pos, 2 * half_rot] f32
struct RopeArgs {
  float* x;
  const int32_t* positions;
  const float* cos_sin;
  int n, width, num_heads, head_size, half_rot, max_pos, interleaved;
};
void rope(const RopeArgs& a, gpuStream_t stream);

// x: [n, 2 * inter] f32; out: [n, inter] out_dtype (f32 | f16 | bf16, as rms_norm's out)
struct SiluAndMulArgs {
  const float* x;
  void* out;
  int n, inter, out_dtype;
};
void silu_and_mul(const SiluAndMulArgs& a, gpuStream_t stream);

// a: [m, k] f32 (matmul_blas: or w's 16-bit type, its launch says); w: [n, k] dtype; bias: [n] f32 or null; out: [m, n] f32
struct MatmulArgs {
  const float* a;
  const void* w;
  const float* bias;
  float* out;
  int m, n, k, dtype;
};
/** Few rows (decode): one warp per output column, f32 accumulation; m <= kGemvMaxRows. */
void matmul_gemv(const MatmulArgs& a, gpuStream_t stream);
constexpr int kGemvMaxRows = 16;
/** Any shape, f32 accumulation of f32 operands (the exact path where no BLAS is loaded). */
void matmul_tiled(const MatmulArgs& a, gpuStream_t stream);
/** out[i, :] += bias (after a BLAS gemm, which has no bias epilogue here). */
void add_bias(float* out, const float* bias, int m, int n, gpuStream_t stream);
/** out = x rounded to dtype (f16 or bf16): the activations of a tensor-core gemm. */
void cast_f32(const float* x, void* out, int64_t count, int dtype, gpuStream_t stream);

// x, out: [n, v] f32 (out may alias x)
struct SoftmaxArgs {
  const float* x;
  float* out;
  int n, v;
};
void softmax(const SoftmaxArgs& a, gpuStream_t stream);

// x: [n, v] f32; out: [n] i32
struct ArgmaxArgs {
  const float* x;
  int32_t* out;
  int n, v;
};
void argmax(const ArgmaxArgs& a, gpuStream_t stream);

// logits: [n, v] f32; temperature, top_p, min_p, draws: [n] f32; top_k: [n] i32; out: [n] i32
struct SampleArgs {
  const float* logits;
  const float* temperature;
  const int32_t* top_k;
  const float* top_p;
  const float* min_p;
  const float* draws;
  int32_t* out;
  int n, v;
};
void sample(const SampleArgs& a, gpuStream_t stream);

// logits: [n, v] f32 in place; *_ids: [n, max_*] i32 padded with -1; repetition, frequency,
// presence: [n] f32; counts: [n, v] u32 scratch, all zero before and after
struct ApplyPenaltiesArgs {
  float* logits;
  const int32_t* prompt_ids;
  const int32_t* output_ids;
  const int32_t* banned_ids;
  const float* repetition;
  const float* frequency;
  const float* presence;
  uint32_t* counts;
  int n, v, max_prompt, max_out, max_banned;
};
void apply_penalties(const ApplyPenaltiesArgs& a, gpuStream_t stream);

// logits: [n, v] f32; ids: [n] i32; out_logprob: [n] f32; out_top_ids: [n, top_n] i32;
// out_top_logprobs: [n, top_n] f32 (both null when top_n is 0)
struct LogprobsArgs {
  const float* logits;
  const int32_t* ids;
  float* out_logprob;
  int32_t* out_top_ids;
  float* out_top_logprobs;
  int n, v, top_n;
};
void logprobs(const LogprobsArgs& a, gpuStream_t stream);
constexpr int kMaxTopLogprobs = 20;

// x, out: [n] f32
struct CopyArgs {
  const float* x;
  float* out;
  int64_t n;
};
void copy(const CopyArgs& a, gpuStream_t stream);

// ids: [n] i32, in place; sampled: [m] i32
struct ResolveTokensArgs {
  int32_t* ids;
  const int32_t* sampled;
  int n, m;
};
void resolve_tokens(const ResolveTokensArgs& a, gpuStream_t stream);

// key, value: [n, width] f32; caches: [num_slots, width] dtype; slot_mapping: [n] i32
struct ReshapeAndCacheArgs {
  const float* key;
  const float* value;
  void* key_cache;
  void* value_cache;
  const int32_t* slot_mapping;
  int n, width, dtype;
  int64_t num_slots;
};
void reshape_and_cache(const ReshapeAndCacheArgs& a, gpuStream_t stream);

// qkv: [n, (num_heads + 2 * num_kv_heads) * head_size] f32; positions: [n] i32; cos_sin:
// [max_pos, 2 * half_rot] f32; q: [n, num_heads * head_size] f32; caches: [num_slots,
// num_kv_heads * head_size] dtype; slot_mapping: [n] i32
struct QkvRopeCacheArgs {
  const float* qkv;
  const int32_t* positions;
  const float* cos_sin;
  float* q;
  void* key_cache;
  void* value_cache;
  const int32_t* slot_mapping;
  int n, num_heads, num_kv_heads, head_size, half_rot, max_pos, dtype;
  int64_t num_slots;
};
void qkv_rope_cache(const QkvRopeCacheArgs& a, gpuStream_t stream);

// caches: [num_blocks, block_words] u32 words; pairs: [m, 2] i32 (src, dst)
struct CopyBlocksArgs {
  uint32_t* key_cache;
  uint32_t* value_cache;
  const int32_t* pairs;
  int m, num_blocks;
  int64_t block_words;
};
void copy_blocks(const CopyBlocksArgs& a, gpuStream_t stream);

// Decode (one query row per sequence) and prefill (query_starts) attention over the paged
// cache. q, out: [rows, num_heads * head_size] f32; caches: [num_blocks, block_size,
// num_kv_heads, head_size] dtype; block_tables: [num_seqs, max_blocks] i32; context_lens:
// [num_seqs] i32. v2 (partitions > 1) writes part_out: [num_seqs, num_heads, partitions,
// head_size] f32 and part_ml: [num_seqs, num_heads, partitions, 2] f32 for the reduce.
struct AttentionArgs {
  const float* q;
  const void* key_cache;
  const void* value_cache;
  const int32_t* block_tables;
  const int32_t* context_lens;
  const int32_t* query_starts;  // prefill only
  float* out;
  float* part_out;  // v2 only
  float* part_ml;   // v2 only
  int num_seqs, num_tokens, num_heads, num_kv_heads, head_size, block_size, max_blocks;
  int partition_size, partitions, dtype;
  float scale;
};
constexpr int kMaxHeadSize = 256;
void paged_attention(const AttentionArgs& a, gpuStream_t stream);
void paged_attention_reduce(const AttentionArgs& a, gpuStream_t stream);
void prefill_attention(const AttentionArgs& a, gpuStream_t stream);

}  // namespace parallm

// Kernel launches by op code from positional argument arrays (the layouts below are the one
// table of argument order; src/device/native/ops.ts encodes named arguments by it), and graph
// capture and replay of those launches.
#include <napi.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "context.h"
#include "gpu_runtime.h"
#include "ops.h"

namespace parallm {

// ---------------------------------------------------------------------------------------------
// Kernel launches. Each op's arguments arrive as a Float64Array in the order of its layout
// string below, which the TypeScript Launcher reads from layouts() to encode named arguments:
// a name the planner gives that this table lacks, or one it omits, is an error there.

enum Op : int {
  kOpEmbedding,
  kOpRmsNorm,
  kOpRope,
  kOpSiluAndMul,
  kOpMatmulGemv,
  kOpMatmulTiled,
  kOpMatmulBlas,
  kOpSoftmax,
  kOpArgmax,
  kOpSample,
  kOpApplyPenalties,
  kOpLogprobs,
  kOpCopy,
  kOpReshapeAndCache,
  kOpQkvRopeCache,
  kOpCopyBlocks,
  kOpPagedAttention,
  kOpPagedAttentionReduce,
  kOpPrefillAttention,
  kOpResolveTokens,
  kOpCount,
};

struct Layout {
  const char* name;
  const char* fields;
};
const Layout kLayouts[kOpCount] = {
    {"embedding", "ids table out n hidden vocab dtype"},
    {"rms_norm", "x weight out residual n hidden dtype out_dtype eps"},
    {"rope", "x positions cos_sin n width num_heads head_size half_rot max_pos interleaved"},
    {"silu_and_mul", "x out n inter out_dtype"},
    {"matmul_gemv", "a w bias out m n k dtype"},
    {"matmul_tiled", "a w bias out m n k dtype"},
    {"matmul_blas", "a w bias out m n k dtype a_dtype a16"},
    {"softmax", "x out n v"},
    {"argmax", "x out n v"},
    {"sample", "logits temperature top_k top_p min_p draws out n v"},
    {"apply_penalties", "logits prompt_ids output_ids banned_ids repetition frequency presence counts n v max_prompt max_out max_banned"},
    {"logprobs", "logits ids out_logprob out_top_ids out_top_logprobs n v top_n"},
    {"copy", "x out n"},
    {"reshape_and_cache", "key value key_cache value_cache slot_mapping n width dtype num_slots"},
    {"qkv_rope_cache", "qkv positions cos_sin q key_cache value_cache slot_mapping n num_heads num_kv_heads head_size half_rot max_pos dtype num_slots"},
    {"copy_blocks", "key_cache value_cache pairs m num_blocks block_words"},
    {"paged_attention", "q key_cache value_cache block_tables context_lens out part_out part_ml num_seqs num_heads num_kv_heads head_size block_size max_blocks partition_size partitions dtype scale"},
    {"paged_attention_reduce", "part_out part_ml context_lens out num_seqs num_heads head_size block_size max_blocks partition_size partitions"},
    {"prefill_attention", "q key_cache value_cache block_tables query_starts context_lens out num_seqs num_tokens num_heads num_kv_heads head_size block_size max_blocks dtype scale"},
    {"resolve_tokens", "ids sampled n m"},
};

Napi::Value Layouts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array r = Napi::Array::New(env, kOpCount);
  for (int i = 0; i < kOpCount; i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", kLayouts[i].name);
    o.Set("fields", kLayouts[i].fields);
    r.Set(static_cast<uint32_t>(i), o);
  }
  return r;
}

class Args {
 public:
  Args(Napi::Env env, const double* p, size_t n, int op) : env_(env), p_(p), n_(n), op_(op) {}
  template <typename T>
  T* ptr() {
    return reinterpret_cast<T*>(static_cast<uintptr_t>(next()));
  }
  int i32() { return static_cast<int>(next()); }
  int64_t i64() { return static_cast<int64_t>(next()); }
  float f32() { return static_cast<float>(next()); }
  void done() {
    if (i_ != n_) fail();
  }

 private:
  double next() {
    if (i_ >= n_) fail();
    return p_[i_++];
  }
  [[noreturn]] void fail() {
    throw Napi::Error::New(env_, std::string("native: ") + kLayouts[op_].name + " takes " + "the fields '" + kLayouts[op_].fields + "', got " + std::to_string(n_) + " values");
  }
  Napi::Env env_;
  const double* p_;
  size_t n_, i_ = 0;
  int op_;
};

static AttentionArgs attention_common() {
  AttentionArgs a;
  std::memset(&a, 0, sizeof a);
  return a;
}

static bool capturing = false;  // between captureBegin and captureEnd (not in the emulator)

#if defined(PARALLM_EMU)
// The emulator runs kernels at launch, so it emulates a capture here: launches are recorded
// and a graph launch replays them (the semantics of a CUDA graph, without its speed).
struct EmuLaunch {
  int op;
  std::vector<double> args;
};
static bool emu_capturing = false;
static std::vector<EmuLaunch> emu_capture;
static std::vector<std::vector<EmuLaunch>> emu_graphs;
#endif

static void run_launch(Napi::Env env, int op, const double* args, size_t n);

#if !defined(PARALLM_EMU)
struct ProfiledLaunch {
  std::string key;
  gpuEvent_t start, end;
};
static std::vector<ProfiledLaunch> profiled;
static bool profiling() {
  static const bool on = [] {
    const char* v = std::getenv("PARALLM_NATIVE_PROFILE");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  return on && !capturing;
}
static std::string profile_key(int op, const double* args, size_t n) {
  std::string k = kLayouts[op].name;
  if ((op == kOpMatmulGemv || op == kOpMatmulTiled || op == kOpMatmulBlas) && n > 6)
    k += " " + std::to_string(static_cast<long long>(args[5])) + "x" + std::to_string(static_cast<long long>(args[6]));
  return k;
}
#endif

Napi::Value Launch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_open(env);
  const int op = info[0].As<Napi::Number>().Int32Value();
  if (op < 0 || op >= kOpCount) throw Napi::Error::New(env, "native: unknown op code " + std::to_string(op));
  Napi::Float64Array a = info[1].As<Napi::Float64Array>();
#if defined(PARALLM_EMU)
  if (emu_capturing) {
    emu_capture.push_back({op, std::vector<double>(a.Data(), a.Data() + a.ElementLength())});
    return env.Undefined();
  }
#endif
#if !defined(PARALLM_EMU)
  if (profiling()) {
    ProfiledLaunch p{profile_key(op, a.Data(), a.ElementLength()), nullptr, nullptr};
    (void)gpuEventCreateWithFlags(&p.start, gpuEventDefault);
    (void)gpuEventCreateWithFlags(&p.end, gpuEventDefault);
    (void)gpuEventRecord(p.start, ctx.stream);
    run_launch(env, op, a.Data(), a.ElementLength());
    (void)gpuEventRecord(p.end, ctx.stream);
    profiled.push_back(p);
    return env.Undefined();
  }
#endif
  run_launch(env, op, a.Data(), a.ElementLength());
  return env.Undefined();
}

// PARALLM_NATIVE_PROFILE=1: every launch outside graph capture is bracketed by two events, and
// profile() returns the GPU time per op since the last call ({key: [ms, launches]}; matmuls keyed
// by their n x k as well), for finding where a step's time goes without a vendor profiler.
Napi::Value Profile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
#if !defined(PARALLM_EMU)
  if (!profiled.empty()) (void)gpuEventSynchronize(profiled.back().end);
  for (ProfiledLaunch& p : profiled) {
    float ms = 0.f;
    (void)gpuEventElapsedTime(&ms, p.start, p.end);
    Napi::Array e = o.Has(p.key) ? o.Get(p.key).As<Napi::Array>() : Napi::Array::New(env, 2);
    if (!o.Has(p.key)) e.Set(0u, 0.0), e.Set(1u, 0.0), o.Set(p.key, e);
    e.Set(0u, e.Get(0u).As<Napi::Number>().DoubleValue() + ms);
    e.Set(1u, e.Get(1u).As<Napi::Number>().DoubleValue() + 1);
    (void)gpuEventDestroy(p.start);
    (void)gpuEventDestroy(p.end);
  }
  profiled.clear();
#endif
  return o;
}

static void run_launch(Napi::Env env, int op, const double* args, size_t n) {
  Args r(env, args, n, op);
  gpuStream_t s = ctx.stream;
  switch (op) {
    case kOpEmbedding: {
      EmbeddingArgs a{r.ptr<const int32_t>(), r.ptr<const void>(), r.ptr<float>(), r.i32(), r.i32(), r.i32(), r.i32()};
      r.done();
      embedding(a, s);
      break;
    }
    case kOpRmsNorm: {
      RmsNormArgs a;
      a.x = r.ptr<const float>(), a.weight = r.ptr<const void>(), a.out = r.ptr<void>(), a.residual = r.ptr<float>();
      a.n = r.i32(), a.hidden = r.i32(), a.dtype = r.i32(), a.out_dtype = r.i32(), a.eps = r.f32();
      r.done();
      rms_norm(a, s);
      break;
    }
    case kOpRope: {
      RopeArgs a;
      a.x = r.ptr<float>(), a.positions = r.ptr<const int32_t>(), a.cos_sin = r.ptr<const float>();
      a.n = r.i32(), a.width = r.i32(), a.num_heads = r.i32(), a.head_size = r.i32(), a.half_rot = r.i32(), a.max_pos = r.i32(), a.interleaved = r.i32();
      r.done();
      rope(a, s);
      break;
    }
    case kOpSiluAndMul: {
      SiluAndMulArgs a;
      a.x = r.ptr<const float>(), a.out = r.ptr<void>(), a.n = r.i32(), a.inter = r.i32(), a.out_dtype = r.i32();
      r.done();
      silu_and_mul(a, s);
      break;
    }
    case kOpMatmulGemv:
    case kOpMatmulTiled:
    case kOpMatmulBlas: {
      MatmulArgs a;
      a.a = r.ptr<const float>(), a.w = r.ptr<const void>(), a.bias = r.ptr<const float>(), a.out = r.ptr<float>();
      a.m = r.i32(), a.n = r.i32(), a.k = r.i32(), a.dtype = r.i32();
      if (op == kOpMatmulGemv) {
        r.done();
        if (a.m > kGemvMaxRows) throw Napi::Error::New(env, "native: matmul_gemv takes at most " + std::to_string(kGemvMaxRows) + " rows");
        matmul_gemv(a, s);
      } else if (op == kOpMatmulTiled) {
        r.done();
        matmul_tiled(a, s);
      } else {
        // a's type: f32, or w's 16-bit type (written so by its producer: no cast here)
        const int a_dtype = r.i32();
        // the activations in w's type (a scratch of m * k values, given as a16; unused for f32 w or 16-bit a)
        void* a16 = r.ptr<void>();
        r.done();
        if (!ctx.blas.loaded()) throw Napi::Error::New(env, "native: matmul_blas without a BLAS library: " + ctx.blas.error());
        if (a_dtype != kF32 && a_dtype != a.dtype) throw Napi::Error::New(env, "native: matmul_blas takes 16-bit activations only of the weights' type");
        if (a.m == 0 || a.n == 0) break;
        const void* act = a.a;
        if (a.dtype != kF32 && a_dtype == kF32) {
          cast_f32(a.a, a16, static_cast<int64_t>(a.m) * a.k, a.dtype, s);
          act = a16;
        }
        const std::string err = ctx.blas.gemm(a.dtype, a.m, a.n, a.k, act, a.w, a.out);
        if (!err.empty()) throw Napi::Error::New(env, "native: " + err);
        if (a.bias) add_bias(a.out, a.bias, a.m, a.n, s);
      }
      break;
    }
    case kOpSoftmax: {
      SoftmaxArgs a{r.ptr<const float>(), r.ptr<float>(), r.i32(), r.i32()};
      r.done();
      softmax(a, s);
      break;
    }
    case kOpArgmax: {
      ArgmaxArgs a{r.ptr<const float>(), r.ptr<int32_t>(), r.i32(), r.i32()};
      r.done();
      argmax(a, s);
      break;
    }
    case kOpSample: {
      SampleArgs a;
      a.logits = r.ptr<const float>(), a.temperature = r.ptr<const float>(), a.top_k = r.ptr<const int32_t>(), a.top_p = r.ptr<const float>();
      a.min_p = r.ptr<const float>(), a.draws = r.ptr<const float>(), a.out = r.ptr<int32_t>(), a.n = r.i32(), a.v = r.i32();
      r.done();
      sample(a, s);
      break;
    }
    case kOpApplyPenalties: {
      ApplyPenaltiesArgs a;
      a.logits = r.ptr<float>(), a.prompt_ids = r.ptr<const int32_t>(), a.output_ids = r.ptr<const int32_t>(), a.banned_ids = r.ptr<const int32_t>();
      a.repetition = r.ptr<const float>(), a.frequency = r.ptr<const float>(), a.presence = r.ptr<const float>(), a.counts = r.ptr<uint32_t>();
      a.n = r.i32(), a.v = r.i32(), a.max_prompt = r.i32(), a.max_out = r.i32(), a.max_banned = r.i32();
      r.done();
      apply_penalties(a, s);
      break;
    }
    case kOpLogprobs: {
      LogprobsArgs a;
      a.logits = r.ptr<const float>(), a.ids = r.ptr<const int32_t>(), a.out_logprob = r.ptr<float>(), a.out_top_ids = r.ptr<int32_t>();
      a.out_top_logprobs = r.ptr<float>(), a.n = r.i32(), a.v = r.i32(), a.top_n = r.i32();
      r.done();
      if (a.top_n < 0 || a.top_n > kMaxTopLogprobs) throw Napi::Error::New(env, "native: logprobs top_n out of range");
      logprobs(a, s);
      break;
    }
    case kOpCopy: {
      CopyArgs a{r.ptr<const float>(), r.ptr<float>(), r.i64()};
      r.done();
      copy(a, s);
      break;
    }
    case kOpResolveTokens: {
      ResolveTokensArgs a{r.ptr<int32_t>(), r.ptr<const int32_t>(), r.i32(), r.i32()};
      r.done();
      resolve_tokens(a, s);
      break;
    }
    case kOpReshapeAndCache: {
      ReshapeAndCacheArgs a;
      a.key = r.ptr<const float>(), a.value = r.ptr<const float>(), a.key_cache = r.ptr<void>(), a.value_cache = r.ptr<void>();
      a.slot_mapping = r.ptr<const int32_t>(), a.n = r.i32(), a.width = r.i32(), a.dtype = r.i32(), a.num_slots = r.i64();
      r.done();
      reshape_and_cache(a, s);
      break;
    }
    case kOpQkvRopeCache: {
      QkvRopeCacheArgs a;
      a.qkv = r.ptr<const float>(), a.positions = r.ptr<const int32_t>(), a.cos_sin = r.ptr<const float>(), a.q = r.ptr<float>();
      a.key_cache = r.ptr<void>(), a.value_cache = r.ptr<void>(), a.slot_mapping = r.ptr<const int32_t>();
      a.n = r.i32(), a.num_heads = r.i32(), a.num_kv_heads = r.i32(), a.head_size = r.i32(), a.half_rot = r.i32(), a.max_pos = r.i32(), a.dtype = r.i32();
      a.num_slots = r.i64();
      r.done();
      qkv_rope_cache(a, s);
      break;
    }
    case kOpCopyBlocks: {
      CopyBlocksArgs a;
      a.key_cache = r.ptr<uint32_t>(), a.value_cache = r.ptr<uint32_t>(), a.pairs = r.ptr<const int32_t>();
      a.m = r.i32(), a.num_blocks = r.i32(), a.block_words = r.i64();
      r.done();
      copy_blocks(a, s);
      break;
    }
    case kOpPagedAttention: {
      AttentionArgs a = attention_common();
      a.q = r.ptr<const float>(), a.key_cache = r.ptr<const void>(), a.value_cache = r.ptr<const void>(), a.block_tables = r.ptr<const int32_t>();
      a.context_lens = r.ptr<const int32_t>(), a.out = r.ptr<float>(), a.part_out = r.ptr<float>(), a.part_ml = r.ptr<float>();
      a.num_seqs = r.i32(), a.num_heads = r.i32(), a.num_kv_heads = r.i32(), a.head_size = r.i32(), a.block_size = r.i32(), a.max_blocks = r.i32();
      a.partition_size = r.i32(), a.partitions = r.i32(), a.dtype = r.i32(), a.scale = r.f32();
      r.done();
      paged_attention(a, s);
      break;
    }
    case kOpPagedAttentionReduce: {
      AttentionArgs a = attention_common();
      a.part_out = r.ptr<float>(), a.part_ml = r.ptr<float>(), a.context_lens = r.ptr<const int32_t>(), a.out = r.ptr<float>();
      a.num_seqs = r.i32(), a.num_heads = r.i32(), a.head_size = r.i32(), a.block_size = r.i32(), a.max_blocks = r.i32();
      a.partition_size = r.i32(), a.partitions = r.i32();
      r.done();
      paged_attention_reduce(a, s);
      break;
    }
    case kOpPrefillAttention: {
      AttentionArgs a = attention_common();
      a.q = r.ptr<const float>(), a.key_cache = r.ptr<const void>(), a.value_cache = r.ptr<const void>(), a.block_tables = r.ptr<const int32_t>();
      a.query_starts = r.ptr<const int32_t>(), a.context_lens = r.ptr<const int32_t>(), a.out = r.ptr<float>();
      a.num_seqs = r.i32(), a.num_tokens = r.i32(), a.num_heads = r.i32(), a.num_kv_heads = r.i32(), a.head_size = r.i32(), a.block_size = r.i32();
      a.max_blocks = r.i32(), a.dtype = r.i32(), a.scale = r.f32();
      r.done();
      prefill_attention(a, s);
      break;
    }
    default:
      break;
  }
  // a launch error (bad configuration) is a bug: fail at the op that caused it
  const gpuError_t e = gpuGetLastError();
  if (e != gpuSuccess) throw Napi::Error::New(env, std::string("native: launching ") + kLayouts[op].name + " failed (" + gpu_error(e) + ")");
}

// ---------------------------------------------------------------------------------------------
// Graphs (CUDA graphs / HIP graphs): the launches between captureBegin and captureEnd are
// recorded, not run; graphLaunch(id) then runs them all with one launch. The caller plans every
// launch before capturing (allocations and memsets happen at planning, outside the capture).

static std::vector<gpuGraphExec_t> graphs;  // by id; freed slots are null

Napi::Value CaptureBegin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_open(env);
  if (capturing) throw Napi::Error::New(env, "native: a capture is already open");
#if defined(PARALLM_EMU)
  emu_capturing = true;
  emu_capture.clear();
#else
  check(env, gpuStreamBeginCapture(ctx.stream, gpuStreamCaptureModeThreadLocal), "beginning a graph capture");
#endif
  capturing = true;
  return env.Undefined();
}

/** Ends the capture; returns the graph's id, or throws (the capture is closed either way). */
Napi::Value CaptureEnd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!capturing) throw Napi::Error::New(env, "native: no capture is open");
  capturing = false;
#if defined(PARALLM_EMU)
  emu_capturing = false;
  emu_graphs.push_back(std::move(emu_capture));
  emu_capture.clear();
  graphs.push_back(reinterpret_cast<gpuGraphExec_t>(emu_graphs.size()));  // a non-null token
  return Napi::Number::New(env, static_cast<double>(graphs.size() - 1));
#endif
  gpuGraph_t graph = nullptr;
  check(env, gpuStreamEndCapture(ctx.stream, &graph), "ending a graph capture");
  gpuGraphExec_t exec = nullptr;
  const gpuError_t e = gpuGraphInstantiateWithFlags(&exec, graph, 0);
  (void)gpuGraphDestroy(graph);
  check(env, e, "instantiating a graph");
  for (size_t i = 0; i < graphs.size(); i++) {
    if (!graphs[i]) {
      graphs[i] = exec;
      return Napi::Number::New(env, static_cast<double>(i));
    }
  }
  graphs.push_back(exec);
  return Napi::Number::New(env, static_cast<double>(graphs.size() - 1));
}

static gpuGraphExec_t graph_arg(Napi::Env env, const Napi::Value& v) {
  const double id = v.As<Napi::Number>().DoubleValue();
  if (!(id >= 0 && id < static_cast<double>(graphs.size())) || !graphs[static_cast<size_t>(id)]) throw Napi::Error::New(env, "native: no graph " + std::to_string(id));
  return graphs[static_cast<size_t>(id)];
}

Napi::Value GraphLaunch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#if defined(PARALLM_EMU)
  const size_t g = reinterpret_cast<size_t>(graph_arg(env, info[0])) - 1;
  for (const EmuLaunch& l : emu_graphs[g]) run_launch(env, l.op, l.args.data(), l.args.size());
  return env.Undefined();
#endif
  check(env, gpuGraphLaunch(graph_arg(env, info[0]), ctx.stream), "launching a graph");
  return env.Undefined();
}

Napi::Value GraphDestroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  gpuGraphExec_t exec = graph_arg(env, info[0]);
  // a launch still queued keeps running: destroying an executable graph is deferred by the driver
#if !defined(PARALLM_EMU)
  check(env, gpuGraphExecDestroy(exec), "destroying a graph");
#else
  (void)exec;
#endif
  graphs[static_cast<size_t>(info[0].As<Napi::Number>().DoubleValue())] = nullptr;
  return env.Undefined();
}

}  // namespace parallm

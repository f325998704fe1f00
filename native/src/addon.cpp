// The Node-API face of the native backend (src/device/native/ on the TypeScript side):
// device discovery, raw device allocations (the TypeScript arena carves them), host <-> device
// copies, kernel launches by op code from positional argument arrays, and submissions that
// resolve a Promise when their last command has finished on the GPU.
//
// One device (GPU 0, or PARALLM_NATIVE_DEVICE) and one stream per process: every Device object
// in JavaScript shares them, so commands from all of them run in the order they were issued.
#include <napi.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "blas.h"
#include "gpu_runtime.h"
#include "ops.h"

namespace parallm {
namespace {

// ---------------------------------------------------------------------------------------------
// Process state

struct Context {
  bool open = false;
  int device = 0;
  gpuStream_t stream = nullptr;
  Blas blas;
};
Context ctx;

std::string gpu_error(gpuError_t e) { return std::string(gpuGetErrorName(e)) + ": " + gpuGetErrorString(e); }

void check(Napi::Env env, gpuError_t e, const char* what) {
  if (e != gpuSuccess) throw Napi::Error::New(env, std::string("native: ") + what + " failed (" + gpu_error(e) + ")");
}

void require_open(Napi::Env env) {
  if (!ctx.open) throw Napi::Error::New(env, "native: the device is not open");
}

// Device pointers travel to JavaScript as numbers: exact below 2^53, which every x86-64 and
// aarch64 virtual address is.
Napi::Value ptr_value(Napi::Env env, const void* p) { return Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(p))); }

void* ptr_arg(const Napi::Value& v) {
  const double d = v.As<Napi::Number>().DoubleValue();
  return reinterpret_cast<void*>(static_cast<uintptr_t>(d));
}

// ---------------------------------------------------------------------------------------------
// Pinned staging for stream writes and reads: blocks by power-of-two size, reused once the
// submission that used them has completed.

class Staging {
 public:
  void* acquire(size_t bytes) {
    size_t size = 4096;
    while (size < bytes) size <<= 1;
    auto& free = free_[size];
    if (!free.empty()) {
      void* p = free.back();
      free.pop_back();
      return p;
    }
    void* p = nullptr;
    if (gpuHostAlloc(&p, size) != gpuSuccess) return nullptr;
    sizes_[p] = size;
    return p;
  }
  void release(void* p) { free_[sizes_[p]].push_back(p); }

 private:
  std::map<size_t, std::vector<void*>> free_;
  std::map<void*, size_t> sizes_;
};
Staging staging;

struct Read {
  void* host;
  size_t bytes;
};

struct Submission {
  std::vector<void*> blocks;  // staging to release
  std::vector<Read> reads;
  gpuEvent_t start = nullptr, end = nullptr;
};
std::unique_ptr<Submission> current;

// ---------------------------------------------------------------------------------------------
// Discovery

/** {vendor, count} or {vendor, error, code}: whether a GPU is usable, without opening it. */
Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  r.Set("vendor", PARALLM_VENDOR);
  int count = 0;
  const gpuError_t e = gpuGetDeviceCount(&count);
  if (e != gpuSuccess) {
    r.Set("error", gpu_error(e));
    r.Set("code", static_cast<int>(e));
    r.Set("count", 0);
  } else {
    r.Set("count", count);
  }
  return r;
}

Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int device = info.Length() > 0 ? info[0].As<Napi::Number>().Int32Value() : 0;
  if (!ctx.open) {
    check(env, gpuSetDevice(device), "selecting the GPU");
    check(env, gpuStreamCreateWithFlags(&ctx.stream, gpuStreamNonBlocking), "creating a stream");
    ctx.device = device;
    ctx.blas.open(ctx.stream);
    ctx.open = true;
  }
#if defined(PARALLM_EMU)
  struct {
    const char* name = "parallm CPU emulator";
    int major = 0, minor = 0, multiProcessorCount = 1, warpSize = PARALLM_EMU_WARP;
  } prop;
#elif defined(__HIP_PLATFORM_AMD__)
  hipDeviceProp_t prop;
  check(env, hipGetDeviceProperties(&prop, ctx.device), "reading the device properties");
#else
  cudaDeviceProp prop;
  check(env, cudaGetDeviceProperties(&prop, ctx.device), "reading the device properties");
#endif
  size_t free_bytes = 0, total_bytes = 0;
  check(env, gpuMemGetInfo(&free_bytes, &total_bytes), "reading the memory size");
  int driver = 0, runtime = 0;
  (void)gpuDriverGetVersion(&driver);
  (void)gpuRuntimeGetVersion(&runtime);
  Napi::Object r = Napi::Object::New(env);
  r.Set("vendor", PARALLM_VENDOR);
  r.Set("name", prop.name);
  r.Set("major", prop.major);
  r.Set("minor", prop.minor);
  r.Set("multiProcessors", prop.multiProcessorCount);
  r.Set("warpSize", prop.warpSize);
  r.Set("totalBytes", static_cast<double>(total_bytes));
  r.Set("freeBytes", static_cast<double>(free_bytes));
  r.Set("driverVersion", driver);
  r.Set("runtimeVersion", runtime);
  r.Set("blasPath", ctx.blas.path());
  r.Set("blasError", ctx.blas.error());
  r.Set("blasLoaded", ctx.blas.loaded());
  return r;
}

Napi::Value MemInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_open(env);
  size_t free_bytes = 0, total_bytes = 0;
  check(env, gpuMemGetInfo(&free_bytes, &total_bytes), "reading the memory size");
  Napi::Object r = Napi::Object::New(env);
  r.Set("freeBytes", static_cast<double>(free_bytes));
  r.Set("totalBytes", static_cast<double>(total_bytes));
  return r;
}

// ---------------------------------------------------------------------------------------------
// Memory

Napi::Value Malloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_open(env);
  const double bytes = info[0].As<Napi::Number>().DoubleValue();
  void* p = nullptr;
  const gpuError_t e = gpuMalloc(&p, static_cast<size_t>(bytes));
  if (e != gpuSuccess) {
    (void)gpuGetLastError();  // clear the allocation error
    Napi::Error err = Napi::Error::New(env, "native: cannot allocate " + std::to_string(static_cast<size_t>(bytes)) + " bytes on the GPU (" + gpu_error(e) + ")");
    err.Set("code", "ENOMEM_GPU");
    throw err;
  }
  // a fresh chunk is zero: apply_penalties' scratch relies on it, and so does nothing else
  check(env, gpuMemsetAsync(p, 0, static_cast<size_t>(bytes), ctx.stream), "clearing an allocation");
  check(env, gpuStreamSynchronize(ctx.stream), "clearing an allocation");
  return ptr_value(env, p);
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_open(env);
  // work already queued may still use the memory: cudaFree waits for the device
  check(env, gpuFree(ptr_arg(info[0])), "freeing device memory");
  return env.Undefined();
}

/** memset(ptr, byte, bytes), queued on the stream. */
Napi::Value Memset(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_open(env);
  check(env, gpuMemsetAsync(ptr_arg(info[0]), info[1].As<Napi::Number>().Int32Value(), static_cast<size_t>(info[2].As<Napi::Number>().DoubleValue()), ctx.stream), "memset");
  return env.Undefined();
}

/** upload(ptr, view): host to device, ordered after all queued work, complete on return. */
Napi::Value Upload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_open(env);
  Napi::TypedArray view = info[1].As<Napi::TypedArray>();
  const auto* src = static_cast<const uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
  check(env, gpuMemcpyAsync(ptr_arg(info[0]), src, view.ByteLength(), gpuMemcpyHostToDevice, ctx.stream), "upload");
  check(env, gpuStreamSynchronize(ctx.stream), "upload");
  return env.Undefined();
}

/** copy(dst, src, bytes): device to device, queued. */
Napi::Value Copy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_open(env);
  check(env, gpuMemcpyAsync(ptr_arg(info[0]), ptr_arg(info[1]), static_cast<size_t>(info[2].As<Napi::Number>().DoubleValue()), gpuMemcpyDeviceToDevice, ctx.stream), "copy");
  return env.Undefined();
}

// ---------------------------------------------------------------------------------------------
// Kernel launches. Each op's arguments arrive as a Float64Array in the order of its layout
// string below; src/device/native/launch.ts writes them in the order of its own table and
// checks at load that both tables name the same fields.

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
  kOpCopyBlocks,
  kOpPagedAttention,
  kOpPagedAttentionReduce,
  kOpPrefillAttention,
  kOpCount,
};

struct Layout {
  const char* name;
  const char* fields;
};
const Layout kLayouts[kOpCount] = {
    {"embedding", "ids table out n hidden vocab dtype"},
    {"rms_norm", "x weight out residual n hidden dtype eps"},
    {"rope", "x positions cos_sin n width num_heads head_size half_rot max_pos interleaved"},
    {"silu_and_mul", "x out n inter"},
    {"matmul_gemv", "a w bias out m n k dtype"},
    {"matmul_tiled", "a w bias out m n k dtype"},
    {"matmul_blas", "a w bias out m n k dtype a16"},
    {"softmax", "x out n v"},
    {"argmax", "x out n v"},
    {"sample", "logits temperature top_k top_p min_p draws out n v"},
    {"apply_penalties", "logits prompt_ids output_ids banned_ids repetition frequency presence counts n v max_prompt max_out max_banned"},
    {"logprobs", "logits ids out_logprob out_top_ids out_top_logprobs n v top_n"},
    {"copy", "x out n"},
    {"reshape_and_cache", "key value key_cache value_cache slot_mapping n width dtype num_slots"},
    {"copy_blocks", "key_cache value_cache pairs m num_blocks block_words"},
    {"paged_attention", "q key_cache value_cache block_tables context_lens out part_out part_ml num_seqs num_heads num_kv_heads head_size block_size max_blocks partition_size partitions dtype scale"},
    {"paged_attention_reduce", "part_out part_ml context_lens out num_seqs num_heads head_size block_size max_blocks partition_size partitions"},
    {"prefill_attention", "q key_cache value_cache block_tables query_starts context_lens out num_seqs num_tokens num_heads num_kv_heads head_size block_size max_blocks dtype scale"},
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

AttentionArgs attention_common() {
  AttentionArgs a;
  std::memset(&a, 0, sizeof a);
  return a;
}

#if defined(PARALLM_EMU)
// The emulator runs kernels at launch, so it emulates a capture here: launches are recorded
// and a graph launch replays them (the semantics of a CUDA graph, without its speed).
struct EmuLaunch {
  int op;
  std::vector<double> args;
};
bool emu_capturing = false;
std::vector<EmuLaunch> emu_capture;
std::vector<std::vector<EmuLaunch>> emu_graphs;
#endif

void run_launch(Napi::Env env, int op, const double* args, size_t n);

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
  run_launch(env, op, a.Data(), a.ElementLength());
  return env.Undefined();
}

void run_launch(Napi::Env env, int op, const double* args, size_t n) {
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
      a.x = r.ptr<const float>(), a.weight = r.ptr<const void>(), a.out = r.ptr<float>(), a.residual = r.ptr<float>();
      a.n = r.i32(), a.hidden = r.i32(), a.dtype = r.i32(), a.eps = r.f32();
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
      a.x = r.ptr<const float>(), a.out = r.ptr<float>(), a.n = r.i32(), a.inter = r.i32();
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
        // the activations in w's type (a scratch of m * k values, given as a16; unused for f32)
        void* a16 = r.ptr<void>();
        r.done();
        if (!ctx.blas.loaded()) throw Napi::Error::New(env, "native: matmul_blas without a BLAS library: " + ctx.blas.error());
        if (a.m == 0 || a.n == 0) break;
        const void* act = a.a;
        if (a.dtype != kF32) {
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
    case kOpReshapeAndCache: {
      ReshapeAndCacheArgs a;
      a.key = r.ptr<const float>(), a.value = r.ptr<const float>(), a.key_cache = r.ptr<void>(), a.value_cache = r.ptr<void>();
      a.slot_mapping = r.ptr<const int32_t>(), a.n = r.i32(), a.width = r.i32(), a.dtype = r.i32(), a.num_slots = r.i64();
      r.done();
      reshape_and_cache(a, s);
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
// Submissions: begin(timing), write(ptr, view), read(ptr, bytes) -> index, end() -> Promise of
// {reads: Uint8Array[], ms}. Launches and copies between begin and end join the submission.

Napi::Value Begin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_open(env);
  if (current) throw Napi::Error::New(env, "native: a submission is already open");
  const bool timing = info[0].As<Napi::Boolean>().Value();
  current = std::make_unique<Submission>();
  if (timing) {
    check(env, gpuEventCreateWithFlags(&current->start, gpuEventBlockingSync), "creating an event");
    check(env, gpuEventRecord(current->start, ctx.stream), "recording an event");
  }
  return env.Undefined();
}

Napi::Value Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!current) throw Napi::Error::New(env, "native: write outside a submission");
  Napi::TypedArray view = info[1].As<Napi::TypedArray>();
  const size_t bytes = view.ByteLength();
  if (bytes == 0) return env.Undefined();
  void* host = staging.acquire(bytes);
  if (!host) throw Napi::Error::New(env, "native: cannot allocate pinned host memory");
  current->blocks.push_back(host);
  std::memcpy(host, static_cast<const uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset(), bytes);
  check(env, gpuMemcpyAsync(ptr_arg(info[0]), host, bytes, gpuMemcpyHostToDevice, ctx.stream), "stream write");
  return env.Undefined();
}

Napi::Value ReadBack(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!current) throw Napi::Error::New(env, "native: read outside a submission");
  const size_t bytes = static_cast<size_t>(info[1].As<Napi::Number>().DoubleValue());
  void* host = nullptr;
  if (bytes) {
    host = staging.acquire(bytes);
    if (!host) throw Napi::Error::New(env, "native: cannot allocate pinned host memory");
    current->blocks.push_back(host);
    check(env, gpuMemcpyAsync(host, ptr_arg(info[0]), bytes, gpuMemcpyDeviceToHost, ctx.stream), "stream read");
  }
  current->reads.push_back({host, bytes});
  return Napi::Number::New(env, static_cast<double>(current->reads.size() - 1));
}

/** Waits for a submission's last event on a worker thread; resolves with its reads. */
class Completion : public Napi::AsyncWorker {
 public:
  Completion(Napi::Env env, std::unique_ptr<Submission> sub) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), sub_(std::move(sub)) {}
  ~Completion() override {
    for (void* b : sub_->blocks) staging.release(b);
    if (sub_->start) (void)gpuEventDestroy(sub_->start);
    if (sub_->end) (void)gpuEventDestroy(sub_->end);
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    // a pool thread: make the device current before touching its events
    (void)gpuSetDevice(ctx.device);
    const gpuError_t e = gpuEventSynchronize(sub_->end);
    if (e != gpuSuccess) {
      SetError("native: the GPU failed while running a stream (" + gpu_error(e) + ")");
      return;
    }
    if (sub_->start) (void)gpuEventElapsedTime(&ms_, sub_->start, sub_->end);
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Array reads = Napi::Array::New(env, sub_->reads.size());
    for (size_t i = 0; i < sub_->reads.size(); i++) {
      const Read& rd = sub_->reads[i];
      Napi::Uint8Array a = Napi::Uint8Array::New(env, rd.bytes);
      if (rd.bytes) std::memcpy(a.Data(), rd.host, rd.bytes);
      reads.Set(static_cast<uint32_t>(i), a);
    }
    Napi::Object r = Napi::Object::New(env);
    r.Set("reads", reads);
    r.Set("ms", sub_->start ? Napi::Value(Napi::Number::New(env, ms_)) : env.Null());
    deferred_.Resolve(r);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::unique_ptr<Submission> sub_;
  float ms_ = 0.f;
};

Napi::Value End(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!current) throw Napi::Error::New(env, "native: end without begin");
  std::unique_ptr<Submission> sub = std::move(current);
  check(env, gpuEventCreateWithFlags(&sub->end, sub->start ? gpuEventBlockingSync : (gpuEventBlockingSync | gpuEventDisableTiming)), "creating an event");
  check(env, gpuEventRecord(sub->end, ctx.stream), "recording an event");
  auto* worker = new Completion(env, std::move(sub));
  Napi::Promise p = worker->promise();
  worker->Queue();
  return p;
}

/** Drops an open submission after a JavaScript error mid-way (its copies may still run). */
Napi::Value Abort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (current) {
    (void)gpuStreamSynchronize(ctx.stream);
    for (void* b : current->blocks) staging.release(b);
    if (current->start) (void)gpuEventDestroy(current->start);
    current.reset();
  }
  return env.Undefined();
}

// ---------------------------------------------------------------------------------------------
// Graphs (CUDA graphs / HIP graphs): the launches between captureBegin and captureEnd are
// recorded, not run; graphLaunch(id) then runs them all with one launch. The caller plans every
// launch before capturing (allocations and memsets happen at planning, outside the capture).

std::vector<gpuGraphExec_t> graphs;  // by id; freed slots are null
bool capturing = false;

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

gpuGraphExec_t graph_arg(Napi::Env env, const Napi::Value& v) {
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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("vendor", PARALLM_VENDOR);
  exports.Set("probe", Napi::Function::New(env, Probe));
  exports.Set("open", Napi::Function::New(env, Open));
  exports.Set("memInfo", Napi::Function::New(env, MemInfo));
  exports.Set("malloc", Napi::Function::New(env, Malloc));
  exports.Set("free", Napi::Function::New(env, Free));
  exports.Set("memset", Napi::Function::New(env, Memset));
  exports.Set("upload", Napi::Function::New(env, Upload));
  exports.Set("copy", Napi::Function::New(env, Copy));
  exports.Set("layouts", Napi::Function::New(env, Layouts));
  exports.Set("launch", Napi::Function::New(env, Launch));
  exports.Set("begin", Napi::Function::New(env, Begin));
  exports.Set("write", Napi::Function::New(env, Write));
  exports.Set("read", Napi::Function::New(env, ReadBack));
  exports.Set("end", Napi::Function::New(env, End));
  exports.Set("abort", Napi::Function::New(env, Abort));
  exports.Set("captureBegin", Napi::Function::New(env, CaptureBegin));
  exports.Set("captureEnd", Napi::Function::New(env, CaptureEnd));
  exports.Set("graphLaunch", Napi::Function::New(env, GraphLaunch));
  exports.Set("graphDestroy", Napi::Function::New(env, GraphDestroy));
  return exports;
}

}  // namespace
}  // namespace parallm

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return parallm::Init(env, exports); }

NODE_API_MODULE(parallm_native, InitModule)

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

#include "context.h"
#include "gpu_runtime.h"

namespace parallm {

// ---------------------------------------------------------------------------------------------
// Process state (context.h)

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
static Napi::Value ptr_value(Napi::Env env, const void* p) { return Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(p))); }

static void* ptr_arg(const Napi::Value& v) {
  const double d = v.As<Napi::Number>().DoubleValue();
  return reinterpret_cast<void*>(static_cast<uintptr_t>(d));
}

namespace {

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
  exports.Set("profile", Napi::Function::New(env, Profile));
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

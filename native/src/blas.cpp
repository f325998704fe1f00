// dlopen of cuBLAS / rocBLAS with the few declarations the matmul needs. The enum values are
// the libraries' documented ABI (cublas_api.h / library_types.h, rocblas-types.h).
#include "blas.h"

#include <dlfcn.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace parallm {

namespace {

#if defined(__HIP_PLATFORM_AMD__)
// rocBLAS
using CreateFn = int (*)(void** handle);
using SetStreamFn = int (*)(void* handle, gpuStream_t stream);
using GemmFn = int (*)(void* handle, int trans_a, int trans_b, int m, int n, int k, const void* alpha, const void* a, int a_type, int lda, const void* b, int b_type,
                       int ldb, const void* beta, const void* c, int c_type, int ldc, void* d, int d_type, int ldd, int compute_type, int algo, int32_t solution_index,
                       uint32_t flags);
constexpr int kOpN = 111, kOpT = 112;
constexpr int kTypeF16 = 150, kTypeF32 = 151, kTypeBF16 = 168;
constexpr int kAlgoStandard = 0;
const char* const kEnvPath = "PARALLM_ROCBLAS_PATH";
const char* const kCreate = "rocblas_create_handle";
const char* const kSetStream = "rocblas_set_stream";
const char* const kGemm = "rocblas_gemm_ex";
const std::vector<std::string> kNames = {"librocblas.so.4", "librocblas.so.3", "librocblas.so", "/opt/rocm/lib/librocblas.so"};
#else
// cuBLAS
using CreateFn = int (*)(void** handle);
using SetStreamFn = int (*)(void* handle, gpuStream_t stream);
using GemmFn = int (*)(void* handle, int trans_a, int trans_b, int m, int n, int k, const void* alpha, const void* a, int a_type, int lda, const void* b, int b_type,
                       int ldb, const void* beta, void* c, int c_type, int ldc, int compute_type, int algo);
constexpr int kOpN = 0, kOpT = 1;
constexpr int kTypeF32 = 0, kTypeF16 = 2, kTypeBF16 = 14;  // cudaDataType: CUDA_R_32F, _16F, _16BF
constexpr int kCompute32F = 68;                            // CUBLAS_COMPUTE_32F (no TF32)
constexpr int kGemmDefault = -1;                           // CUBLAS_GEMM_DEFAULT
const char* const kEnvPath = "PARALLM_CUBLAS_PATH";
const char* const kCreate = "cublasCreate_v2";
const char* const kSetStream = "cublasSetStream_v2";
const char* const kGemm = "cublasGemmEx";
const std::vector<std::string> kNames = {"libcublas.so.13", "libcublas.so.12", "libcublas.so", "/usr/local/cuda/lib64/libcublas.so"};
#endif

int type_of(int dtype) { return dtype == 1 ? kTypeF16 : dtype == 2 ? kTypeBF16 : kTypeF32; }

}  // namespace

void Blas::open(gpuStream_t stream) {
#if defined(PARALLM_EMU)
  // the emulator's "device" memory is host memory: no vendor BLAS can take it
  (void)stream;
  error_ = "the CPU emulator has no BLAS";
  return;
#endif
  std::vector<std::string> tries;
  if (const char* env = std::getenv(kEnvPath); env && *env) {
    std::string p = env;
    // a directory: try the usual names in it
    if (!p.empty() && p.back() == '/') p.pop_back();
    if (p.find(".so") == std::string::npos) {
      for (const auto& n : kNames)
        if (n[0] != '/') tries.push_back(p + "/" + n);
    } else {
      tries.push_back(p);
    }
  }
  for (const auto& n : kNames) tries.push_back(n);
  for (const auto& p : tries) {
    lib_ = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib_) {
      path_ = p;
      break;
    }
    const char* e = dlerror();
    error_ += (error_.empty() ? "" : "; ") + std::string(e ? e : p.c_str());
  }
  if (!lib_) {
    error_ = std::string("no BLAS library found (set ") + kEnvPath + "): " + error_;
    return;
  }
  auto create = reinterpret_cast<CreateFn>(dlsym(lib_, kCreate));
  auto set_stream = reinterpret_cast<SetStreamFn>(dlsym(lib_, kSetStream));
  gemm_ = dlsym(lib_, kGemm);
  if (!create || !set_stream || !gemm_) {
    error_ = path_ + " lacks " + kCreate + ", " + kSetStream + " or " + kGemm;
    return;
  }
  void* h = nullptr;
  if (int st = create(&h); st != 0) {
    error_ = std::string(kCreate) + " failed with status " + std::to_string(st);
    return;
  }
  if (int st = set_stream(h, stream); st != 0) {
    error_ = std::string(kSetStream) + " failed with status " + std::to_string(st);
    return;
  }
  handle_ = h;
  error_.clear();
}

std::string Blas::gemm(int dtype, int m, int n, int k, const void* a, const void* w, float* out) {
  // Row-major out[m, n] = a[m, k] w[n, k]^T is column-major out^T[n, m] = (w as k x n)^T (a as k x m).
  const float alpha = 1.f, beta = 0.f;
  const int t = type_of(dtype);
  auto fn = reinterpret_cast<GemmFn>(gemm_);
#if defined(__HIP_PLATFORM_AMD__)
  const int st = fn(handle_, kOpT, kOpN, n, m, k, &alpha, w, t, k, a, t, k, &beta, out, kTypeF32, n, out, kTypeF32, n, kTypeF32, kAlgoStandard, 0, 0);
#else
  const int st = fn(handle_, kOpT, kOpN, n, m, k, &alpha, w, t, k, a, t, k, &beta, out, kTypeF32, n, kCompute32F, kGemmDefault);
#endif
  return st == 0 ? std::string() : std::string(kGemm) + " failed with status " + std::to_string(st);
}

}  // namespace parallm

// The vendor BLAS, reached through dlopen with a small declared ABI: no BLAS header is needed
// to build (none is installed on the build machine) and the addon loads without the library,
// falling back to its own kernels. NVIDIA: cuBLAS (cublasGemmEx). AMD: rocBLAS (rocblas_gemm_ex).
#pragma once

#include <string>

#include "gpu_runtime.h"

namespace parallm {

class Blas {
 public:
  /** Searches the library (env first, then the loader path) and creates a handle on `stream`. */
  void open(gpuStream_t stream);
  bool loaded() const { return handle_ != nullptr; }
  const std::string& path() const { return path_; }
  /** Why the library is not loaded (every path tried, with dlerror's words). */
  const std::string& error() const { return error_; }
  /**
   * out[m, n] (f32, row-major) = a[m, k] @ w[n, k]^T, a and w both of `dtype` (0 f32, 1 f16,
   * 2 bf16), f32 accumulation. Returns an empty string or the library's error.
   */
  std::string gemm(int dtype, int m, int n, int k, const void* a, const void* w, float* out);

 private:
  void* lib_ = nullptr;
  void* handle_ = nullptr;
  void* gemm_ = nullptr;
  std::string path_, error_;
};

}  // namespace parallm

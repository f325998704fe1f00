// A CPU emulator of the small CUDA subset that native/kernels use, for checking the kernels'
// logic on a machine without a GPU (scripts/native-emu.sh). Each block runs on one OS thread as
// one fiber per GPU thread (ucontext): __syncthreads and the warp shuffles are barriers that
// switch fibers, so block-wide and warp-wide data flow happens as on the GPU, only slowly.
// kWarp is PARALLM_EMU_WARP (32, or 64 to run the AMD width); at 32 it also runs the tensor-core
// instructions behind mma.cuh (mma.sync, ldmatrix, cp.async). __shared__ arrays are static:
// blocks run one after the other. Dynamic shared memory and fresh allocations are filled with
// 0xff bytes (NaN as f32), so a read of something never written shows. Not a performance model.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmath>
#include <tuple>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) alignas(n)

#ifndef PARALLM_EMU_WARP
#define PARALLM_EMU_WARP 32
#endif

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct alignas(8) float2 {
  float x, y;
};
struct alignas(8) uint2 {
  unsigned x, y;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
struct __half {
  uint16_t bits;
};

inline float __half2float(__half h) {
  _Float16 f;
  memcpy(&f, &h.bits, 2);
  return static_cast<float>(f);
}
inline unsigned short __half_as_ushort(__half h) { return h.bits; }
inline __half __float2half_rn(float x) {
  const _Float16 f = static_cast<_Float16>(x);  // round to nearest even
  __half h;
  memcpy(&h.bits, &f, 2);
  return h;
}
inline float __uint_as_float(unsigned u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
inline unsigned __float_as_uint(float f) {
  unsigned u;
  memcpy(&u, &f, 4);
  return u;
}
// the emulator is compiled with -ffp-contract=off: these round like the GPU's _rn intrinsics
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }

inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }

// one OS thread runs the fibers: plain read-modify-writes are atomic here
inline unsigned atomicAdd(unsigned* p, unsigned v) {
  const unsigned o = *p;
  *p = o + v;
  return o;
}
inline unsigned atomicOr(unsigned* p, unsigned v) {
  const unsigned o = *p;
  *p = o | v;
  return o;
}
inline unsigned atomicExch(unsigned* p, unsigned v) {
  const unsigned o = *p;
  *p = v;
  return o;
}

namespace emu {

struct Idx {
  unsigned x, y, z;
};

/** The running fiber's thread index. */
const Idx& thread_idx();
extern Idx block_idx;
extern dim3 block_dim, grid_dim;

void sync_block();
/** Every live lane of the warp publishes v; returns lane `src`'s value. */
uint64_t warp_exchange(uint64_t v, int src);
char* dynamic_smem();

#if PARALLM_EMU_WARP == 32
// The tensor-core instructions behind mma.cuh, from the PTX ISA's definitions, at warp width 32.
// Warp-collective as on the GPU: every lane of a full warp must call them together.
/** mma.sync.m16n8k16.row.col f32 += f16 x f16: c[4] += A B (layouts in mma.cuh). */
void mma_m16n8k16(float c[4], const unsigned a[4], const unsigned b[2]);
/** ldmatrix.x4 (trans: .x4.trans): this lane's row address in, its four words out. */
void ldmatrix_x4(unsigned r[4], const void* row, bool trans);
#endif
/**
 * cp.async: the copy is recorded and lands at this thread's next async_wait (cp.async.wait_all),
 * not before, so that a read that a missing wait or barrier leaves unordered sees stale data here
 * too. src null: `bytes` zero bytes.
 */
void async_copy(void* dst, const void* src, size_t bytes);
void async_wait();

struct Cfg {
  dim3 grid, block;
  size_t smem;
  Cfg(dim3 g, dim3 b, size_t s = 0, const void* stream = nullptr) : grid(g), block(b), smem(s) { (void)stream; }
};

/** Runs fn(tid) for every thread of every block of cfg (fibers, one block at a time). */
void run(const Cfg& cfg, void (*body)(void*), void* ctx);

template <typename... P>
struct Launch {
  void (*kernel)(P...);
  Cfg cfg;
  template <typename... A>
  void operator()(A&&... args) {
    // the arguments converted to the kernel's parameter types once, shared by every thread
    auto bound = [k = kernel, tup = std::make_tuple(static_cast<P>(args)...)]() { std::apply(k, tup); };
    using B = decltype(bound);
    run(cfg, [](void* b) { (*static_cast<B*>(b))(); }, &bound);
  }
};

template <typename... P>
Launch<P...> launch(void (*kernel)(P...), Cfg cfg) {
  return Launch<P...>{kernel, cfg};
}

}  // namespace emu

#define threadIdx (::emu::thread_idx())
#define blockIdx (::emu::block_idx)
#define blockDim (::emu::block_dim)
#define gridDim (::emu::grid_dim)

inline void __syncthreads() { emu::sync_block(); }

template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width) {
  (void)mask;
  static_assert(sizeof(T) <= 8, "shuffles of up to 64 bits");
  uint64_t bits = 0;
  memcpy(&bits, &v, sizeof(T));
  const int lane = static_cast<int>(threadIdx.x) % width;
  const int src = static_cast<int>(threadIdx.x) - lane + (lane ^ lane_mask);
  bits = emu::warp_exchange(bits, src);
  T out;
  memcpy(&out, &bits, sizeof(T));
  return out;
}

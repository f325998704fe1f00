// The tensor cores behind one small API, part of the portability layer (portable.cuh): 16 x 16 x
// 16 f16 tiles with f32 accumulators, whose element-to-lane layout is explicit, so that a kernel
// can run a row's softmax on an accumulator in registers (flash attention) and feed the result
// back as a multiplicand without a trip through shared memory.
//
// PARALLM_MMA is 1 where the API exists: NVIDIA (sm_80 and later: mma.sync.m16n8k16, ldmatrix,
// cp.async) and the emulator at warp width 32, which implements the same instructions from the
// PTX ISA's definitions (native/emu), so that every index a kernel computes around them is
// checked without a GPU. HIP (wavefront 64) has no implementation: MFMA's layouts differ
// (a 16 x 16 accumulator is 4 values per lane, spread by column) and no AMD GPU is at hand to
// check one against, so kernels keep a CUDA-core path, chosen at compile time, for AMD.
#pragma once

#include <string.h>

#include "portable.cuh"

#if defined(PARALLM_EMU)
#define PARALLM_MMA (PARALLM_EMU_WARP == 32)
#elif defined(PARALLM_HIP)
#define PARALLM_MMA 0
#else
#define PARALLM_MMA 1
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "mma.cuh: the tensor-core paths need sm_80 or later (CMAKE_CUDA_ARCHITECTURES)"
#endif
#endif

#if PARALLM_MMA

// ---- The instructions (one warp of 32 lanes executes each together) -------------------------

// c[4] += A[16 x 16] B[16 x 8]: f16 multiplicands, f32 accumulators (mma.sync.m16n8k16.row.col).
// With g = lane / 4 and t = lane % 4, a lane holds (low half first):
//   a[0]: A[g][2t, 2t+1]   a[1]: A[g+8][2t, 2t+1]   a[2]: A[g][2t+8, 2t+9]   a[3]: A[g+8][2t+8, 2t+9]
//   b[0]: B[2t, 2t+1][g]   b[1]: B[2t+8, 2t+9][g]
//   c[0], c[1]: C[g][2t, 2t+1]   c[2], c[3]: C[g+8][2t, 2t+1]
__device__ __forceinline__ void mma_m16n8k16(float c[4], const unsigned a[4], const unsigned b[2]) {
#if defined(PARALLM_EMU)
  emu::mma_m16n8k16(c, a, b);
#else
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// Four 8 x 8 matrices of 16-bit values from shared memory (ldmatrix.x4): lane i gives the address
// of row i % 8 of matrix i / 8 (16 bytes, 16-byte aligned); r[j] receives matrix j's row lane / 4,
// columns 2 (lane % 4) and + 1. The transposed load (.trans) gives matrix j's rows 2 (lane % 4)
// and + 1 of column lane / 4 instead.
__device__ __forceinline__ void ldmatrix_x4(unsigned r[4], const void* row) {
#if defined(PARALLM_EMU)
  emu::ldmatrix_x4(r, row, false);
#else
  const unsigned p = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(p) : "memory");
#endif
}

__device__ __forceinline__ void ldmatrix_x4_trans(unsigned r[4], const void* row) {
#if defined(PARALLM_EMU)
  emu::ldmatrix_x4(r, row, true);
#else
  const unsigned p = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(p) : "memory");
#endif
}

// 16 bytes global -> shared without a trip through registers (cp.async.cg); `valid` false writes
// 16 zero bytes instead (src is then not read). A thread's copies land by its next
// cp_async_wait_all(); other threads see them after a barrier that follows that wait.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
#if defined(PARALLM_EMU)
  emu::async_copy(dst, valid ? src : nullptr, 16);
#else
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0) : "memory");
#endif
}

// Waits for every copy this thread has issued (cp.async.wait_all: commit, then wait for all groups).
__device__ __forceinline__ void cp_async_wait_all() {
#if defined(PARALLM_EMU)
  emu::async_wait();
#else
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

// Two f32 rounded to f16 (round to nearest even) in one 32-bit word, `lo` in the low half.
__device__ __forceinline__ unsigned pack_half2(float lo, float hi) {
  const __half h[2] = {__float2half_rn(lo), __float2half_rn(hi)};
  unsigned w;
  memcpy(&w, h, 4);
  return w;
}

// ---- 16 x 16 x 16 fragments --------------------------------------------------------------
// A warp's share of a 16 x 16 tile. With g = lane / 4 and t = lane % 4, a lane holds rows g and
// g + 8, columns 2t, 2t + 1, 2t + 8 and 2t + 9:
//   FragC x[0], x[1]: (g, 2t..)  x[2], x[3]: (g+8, 2t..)  x[4], x[5]: (g, 2t+8..)  x[6], x[7]: (g+8, 2t+8..)
//   FragA r[0]: (g, 2t..)  r[1]: (g+8, 2t..)  r[2]: (g, 2t+8..)  r[3]: (g+8, 2t+8..)   (f16 pairs)
// The same places: an accumulator converts to a multiplicand A in registers (frag_a_from).
//   FragB r[0]: (k 2t.., n g)  r[1]: (k 2t+8.., n g)  r[2]: (k 2t.., n g+8)  r[3]: (k 2t+8.., n g+8)

struct FragA {
  unsigned r[4];
};
struct FragB {
  unsigned r[4];
};
struct FragC {
  float x[8];
};

__device__ __forceinline__ int mma_lane() { return static_cast<int>(threadIdx.x) % 32; }

__device__ __forceinline__ void frag_zero(FragC& c) {
#pragma unroll
  for (int i = 0; i < 8; i++) c.x[i] = 0.f;
}

// C += A B: two m16n8k16, one per 8-column half of C and B.
__device__ __forceinline__ void frag_mma(FragC& c, const FragA& a, const FragB& b) {
  mma_m16n8k16(&c.x[0], a.r, &b.r[0]);
  mma_m16n8k16(&c.x[4], a.r, &b.r[2]);
}

// A from shared memory, row-major: element (m, k) at p[m * ld + k] (ld in elements, a multiple
// of 8; p 16-byte aligned). Matrix j of the ldmatrix is rows 8 (j % 2).., columns 8 (j / 2)..
__device__ __forceinline__ void frag_load_a(FragA& a, const __half* p, int ld) {
  const int lane = mma_lane(), j = lane / 8;
  ldmatrix_x4(a.r, p + ((j % 2) * 8 + lane % 8) * ld + (j / 2) * 8);
}

// B from shared memory stored by columns: element (k, n) at p[n * ld + k] (K rows for Q K^T).
// Matrix j is n 8 (j / 2).., k 8 (j % 2)..
__device__ __forceinline__ void frag_load_b_cols(FragB& b, const __half* p, int ld) {
  const int lane = mma_lane(), j = lane / 8;
  ldmatrix_x4(b.r, p + ((j / 2) * 8 + lane % 8) * ld + (j % 2) * 8);
}

// B from shared memory stored by rows: element (k, n) at p[k * ld + n] (V rows for P V), through
// the transposed load. Matrix j is k 8 (j % 2).., n 8 (j / 2)..
__device__ __forceinline__ void frag_load_b_rows(FragB& b, const __half* p, int ld) {
  const int lane = mma_lane(), j = lane / 8;
  ldmatrix_x4_trans(b.r, p + ((j % 2) * 8 + lane % 8) * ld + (j / 2) * 8);
}

// The accumulator's values rounded to f16 as a multiplicand A (same rows and columns).
__device__ __forceinline__ FragA frag_a_from(const FragC& c) {
  FragA a;
#pragma unroll
  for (int i = 0; i < 4; i++) a.r[i] = pack_half2(c.x[2 * i], c.x[2 * i + 1]);
  return a;
}

#endif  // PARALLM_MMA

// The fiber scheduler of the CPU emulator (see emu.h): one ucontext fiber per GPU thread of the
// running block, switched at barriers; a pass over the fibers in which none arrives anywhere is
// a deadlock (a barrier not reached by every thread), reported instead of hanging.
#include "emu.h"

#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

// Fiber switches: ucontext's swapcontext also saves the signal mask, a system call per switch,
// which dominated the emulator's time; on x86-64 a switch of the callee-saved registers and the
// stack pointer does (the kernels never change the FP control words).
#if defined(__x86_64__)
extern "C" void parallm_emu_switch(void** save_sp, void* load_sp);
asm(R"(
  .text
  .globl parallm_emu_switch
  .type parallm_emu_switch, @function
parallm_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size parallm_emu_switch, .-parallm_emu_switch
  .section .note.GNU-stack,"",@progbits
  .text
)");
#define PARALLM_EMU_FAST_SWITCH 1
#endif

namespace emu {

Idx block_idx;
dim3 block_dim, grid_dim;

namespace {

constexpr int kWarpWidth = PARALLM_EMU_WARP;
constexpr size_t kStack = 64 * 1024;

struct AsyncCopy {
  void* dst;
  const void* src;  // null: zeros
  size_t bytes;
};

struct Fiber {
  ucontext_t ctx;
  void* sp;  // the fast switch's saved stack pointer
  Idx tid;
  bool done;
  std::vector<char> stack;
  std::vector<AsyncCopy> copies;  // cp.async issued, not yet waited for
};

std::vector<Fiber> fibers;
#if defined(PARALLM_EMU_FAST_SWITCH)
void* scheduler_sp;
#else
ucontext_t scheduler;
#endif
int cur = -1;
unsigned long progress = 0;

int block_live = 0, block_arrived = 0;
unsigned block_gen = 0;
std::vector<int> warp_live, warp_arrived;
std::vector<unsigned> warp_gen;
std::vector<uint64_t> exchange;
constexpr size_t kGatherBytes = 32;  // the most one lane publishes to a warp gather
std::vector<unsigned char> gathered;
std::vector<char> smem;

void (*body_fn)(void*);
void* body_ctx;

void yield() {
#if defined(PARALLM_EMU_FAST_SWITCH)
  parallm_emu_switch(&fibers[cur].sp, scheduler_sp);
#else
  swapcontext(&fibers[cur].ctx, &scheduler);
#endif
}

void release_block() {
  block_arrived = 0;
  block_gen++;
}

void release_warp(int w) {
  warp_arrived[w] = 0;
  warp_gen[w]++;
}

void sync_warp(int w) {
  progress++;
  if (++warp_arrived[w] == warp_live[w]) return release_warp(w);
  const unsigned gen = warp_gen[w];
  while (warp_gen[w] == gen) yield();
}

void entry() {
  body_fn(body_ctx);
  // the thread leaves its barriers: the others no longer wait for it
  fibers[cur].done = true;
  progress++;
  block_live--;
  if (block_arrived > 0 && block_arrived == block_live) release_block();
  const int w = cur / kWarpWidth;
  warp_live[w]--;
  if (warp_arrived[w] > 0 && warp_arrived[w] == warp_live[w]) release_warp(w);
}  // returns to the scheduler through uc_link (ucontext), or see trampoline

#if defined(PARALLM_EMU_FAST_SWITCH)
// A fresh fiber's first switch "returns" here; it never returns itself.
[[noreturn]] void trampoline() {
  entry();
  parallm_emu_switch(&fibers[cur].sp, scheduler_sp);
  abort();  // a finished fiber is never resumed
}

void* initial_stack(std::vector<char>& stack) {
  // [top - 8]: a fake return address (alignment as after a call); [top - 16]: trampoline, which
  // the switch's ret jumps to; below it the six registers the switch pops
  uintptr_t top = reinterpret_cast<uintptr_t>(stack.data() + stack.size()) & ~uintptr_t(15);
  auto* p = reinterpret_cast<void**>(top);
  p[-1] = nullptr;
  p[-2] = reinterpret_cast<void*>(&trampoline);
  for (int i = 3; i <= 8; i++) p[-i] = nullptr;
  return p - 8;
}
#endif

}  // namespace

const Idx& thread_idx() { return fibers[cur].tid; }

void sync_block() {
  progress++;
  if (++block_arrived == block_live) return release_block();
  const unsigned gen = block_gen;
  while (block_gen == gen) yield();
}

uint64_t warp_exchange(uint64_t v, int src) {
  const int w = cur / kWarpWidth;
  exchange[cur] = v;
  sync_warp(w);  // every lane has published
  const uint64_t r = exchange[src];
  sync_warp(w);  // every lane has read before any publishes again
  return r;
}

char* dynamic_smem() { return smem.data(); }

#if PARALLM_EMU_WARP == 32  // mma.sync and ldmatrix are 32-lane instructions

namespace {

// Every lane of the (full) warp publishes `bytes` at `mine`; `all` receives kWarpWidth of them,
// lane by lane. The tensor-core instructions are defined on whole warps only.
void warp_gather(const void* mine, void* all, size_t bytes, const char* what) {
  const int w = cur / kWarpWidth;
  if (warp_live[w] != kWarpWidth) {
    fprintf(stderr, "emu: %s in warp %d with %d of %d lanes (it needs the whole warp)\n", what, w, warp_live[w], kWarpWidth);
    abort();
  }
  memcpy(&gathered[cur * kGatherBytes], mine, bytes);
  sync_warp(w);  // every lane has published
  for (int l = 0; l < kWarpWidth; l++) memcpy(static_cast<char*>(all) + l * bytes, &gathered[(w * kWarpWidth + l) * kGatherBytes], bytes);
  sync_warp(w);  // every lane has read before any publishes again
}

float half_at(unsigned word, int hi) {
  const uint16_t bits = static_cast<uint16_t>(hi ? word >> 16 : word & 0xffffu);
  return __half2float(__half{bits});
}

}  // namespace

void mma_m16n8k16(float c[4], const unsigned a[4], const unsigned b[2]) {
  unsigned mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
  unsigned all[kWarpWidth][6];
  warp_gather(mine, all, sizeof mine, "mma.sync");
  // PTX ISA, fragments of mma.m16n8k16 (f16): A(m, k) is lane (m % 8) * 4 + (k % 8) / 2, register
  // m / 8 + 2 (k / 8), half k % 2; B(k, n) is lane n * 4 + (k % 8) / 2, register k / 8, half k % 2
  auto A = [&](int m, int k) { return half_at(all[(m % 8) * 4 + (k % 8) / 2][m / 8 + 2 * (k / 8)], k % 2); };
  auto B = [&](int k, int n) { return half_at(all[n * 4 + (k % 8) / 2][4 + k / 8], k % 2); };
  const int lane = cur % kWarpWidth, g = lane / 4, t = lane % 4;
  for (int i = 0; i < 4; i++) {
    const int m = g + 8 * (i / 2), n = 2 * t + i % 2;
    float sum = 0.f;  // products of f16 are exact in f32
    for (int k = 0; k < 16; k++) sum += A(m, k) * B(k, n);
    c[i] += sum;
  }
}

void ldmatrix_x4(unsigned r[4], const void* row, bool trans) {
  if (reinterpret_cast<uintptr_t>(row) % 16) {
    fprintf(stderr, "emu: ldmatrix row address %p is not 16-byte aligned\n", row);
    abort();
  }
  const unsigned char* rows[kWarpWidth];
  warp_gather(&row, rows, sizeof row, "ldmatrix");
  const int lane = cur % kWarpWidth, g = lane / 4, t = lane % 4;
  for (int j = 0; j < 4; j++) {
    // matrix j's rows come from lanes 8j..8j+7; a lane gets row g, columns 2t, 2t + 1, or
    // (trans) rows 2t, 2t + 1 of column g
    if (!trans) {
      memcpy(&r[j], rows[8 * j + g] + 4 * t, 4);
    } else {
      uint16_t lo, hi;
      memcpy(&lo, rows[8 * j + 2 * t] + 2 * g, 2);
      memcpy(&hi, rows[8 * j + 2 * t + 1] + 2 * g, 2);
      r[j] = static_cast<unsigned>(lo) | static_cast<unsigned>(hi) << 16;
    }
  }
}

#endif

void async_copy(void* dst, const void* src, size_t bytes) { fibers[cur].copies.push_back({dst, src, bytes}); }

void async_wait() {
  for (const AsyncCopy& c : fibers[cur].copies) {
    if (c.src) memcpy(c.dst, c.src, c.bytes);
    else memset(c.dst, 0, c.bytes);
  }
  fibers[cur].copies.clear();
}

void run(const Cfg& cfg, void (*body)(void*), void* ctx) {
  grid_dim = cfg.grid;
  block_dim = cfg.block;
  body_fn = body;
  body_ctx = ctx;
  const int n = static_cast<int>(cfg.block.x * cfg.block.y * cfg.block.z);
  if (n <= 0 || n > 1024) {
    fprintf(stderr, "emu: a block of %d threads\n", n);
    abort();
  }
  if (static_cast<int>(fibers.size()) < n) fibers.resize(n);
  const int warps = (n + kWarpWidth - 1) / kWarpWidth;
  warp_live.assign(warps, 0);
  warp_arrived.assign(warps, 0);
  warp_gen.assign(warps, 0);
  exchange.assign(n, 0);
  gathered.assign(static_cast<size_t>(warps) * kWarpWidth * kGatherBytes, 0);
  for (unsigned bz = 0; bz < cfg.grid.z; bz++)
    for (unsigned by = 0; by < cfg.grid.y; by++)
      for (unsigned bx = 0; bx < cfg.grid.x; bx++) {
        block_idx = {bx, by, bz};
        smem.assign(cfg.smem, static_cast<char>(0xff));  // NaN until written
        block_live = n;
        block_arrived = 0;
        for (int w = 0; w < warps; w++) warp_live[w] = (w + 1) * kWarpWidth <= n ? kWarpWidth : n - w * kWarpWidth, warp_arrived[w] = 0;
        for (int i = 0; i < n; i++) {
          Fiber& f = fibers[i];
          if (f.stack.empty()) f.stack.resize(kStack);
#if defined(PARALLM_EMU_FAST_SWITCH)
          f.sp = initial_stack(f.stack);
#else
          getcontext(&f.ctx);
          f.ctx.uc_stack.ss_sp = f.stack.data();
          f.ctx.uc_stack.ss_size = f.stack.size();
          f.ctx.uc_link = &scheduler;
          makecontext(&f.ctx, entry, 0);
#endif
          f.tid = {static_cast<unsigned>(i) % cfg.block.x, (static_cast<unsigned>(i) / cfg.block.x) % cfg.block.y, static_cast<unsigned>(i) / (cfg.block.x * cfg.block.y)};
          f.done = false;
          f.copies.clear();  // a copy never waited for does not land
        }
        int alive = n;
        while (alive) {
          const unsigned long before = progress;
          for (int i = 0; i < n; i++) {
            if (fibers[i].done) continue;
            cur = i;
#if defined(PARALLM_EMU_FAST_SWITCH)
            parallm_emu_switch(&scheduler_sp, fibers[i].sp);
#else
            swapcontext(&scheduler, &fibers[i].ctx);
#endif
            if (fibers[i].done) alive--;
          }
          if (alive && progress == before) {
            fprintf(stderr, "emu: deadlock in block (%u, %u, %u): %d threads wait at a barrier the others never reach\n", bx, by, bz, alive);
            abort();
          }
        }
        cur = -1;
      }
}

}  // namespace emu

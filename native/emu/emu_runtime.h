// The host runtime API of the CPU emulator (see emu.h): "device" memory is host memory,
// copies are memcpy, launches run to completion before they return, so streams and events
// only keep time. Graph capture is not emulated (it reports an error).
#pragma once

#include <stdlib.h>
#include <string.h>

#include <chrono>

#define PARALLM_VENDOR "EMU"
typedef void* gpuStream_t;
struct EmuEvent {
  std::chrono::steady_clock::time_point t;
};
typedef EmuEvent* gpuEvent_t;
typedef int gpuError_t;
typedef void* gpuGraph_t;
typedef void* gpuGraphExec_t;
enum { gpuSuccess = 0, gpuErrorNoDevice = 100, gpuErrorInsufficientDriver = 35, gpuErrorNotSupported = 801, gpuErrorMemoryAllocation = 2 };
enum { gpuMemcpyHostToDevice, gpuMemcpyDeviceToHost, gpuMemcpyDeviceToDevice };
enum { gpuStreamNonBlocking = 1, gpuEventDefault = 0, gpuEventBlockingSync = 1, gpuEventDisableTiming = 2, gpuStreamCaptureModeThreadLocal = 1 };

inline const char* gpuGetErrorName(gpuError_t e) { return e == gpuErrorNotSupported ? "emuErrorNotSupported" : e ? "emuError" : "emuSuccess"; }
inline const char* gpuGetErrorString(gpuError_t e) { return e == gpuErrorNotSupported ? "not emulated" : e ? "emulator error" : "no error"; }
inline gpuError_t gpuGetLastError() { return gpuSuccess; }
inline gpuError_t gpuGetDeviceCount(int* n) {
  *n = 1;
  return gpuSuccess;
}
inline gpuError_t gpuSetDevice(int) { return gpuSuccess; }
inline gpuError_t gpuMalloc(void** p, size_t n) {
  *p = aligned_alloc(256, (n + 255) / 256 * 256);
  return *p ? gpuSuccess : gpuErrorMemoryAllocation;
}
inline gpuError_t gpuFree(void* p) {
  free(p);
  return gpuSuccess;
}
inline gpuError_t gpuHostAlloc(void** p, size_t n) { return gpuMalloc(p, n); }
inline gpuError_t gpuFreeHost(void* p) { return gpuFree(p); }
inline gpuError_t gpuMemcpyAsync(void* d, const void* s, size_t n, int, gpuStream_t) {
  memmove(d, s, n);
  return gpuSuccess;
}
inline gpuError_t gpuMemsetAsync(void* d, int v, size_t n, gpuStream_t) {
  memset(d, v, n);
  return gpuSuccess;
}
inline gpuError_t gpuMemGetInfo(size_t* free_bytes, size_t* total) {
  *free_bytes = size_t(8) << 30;
  *total = size_t(8) << 30;
  return gpuSuccess;
}
inline gpuError_t gpuStreamCreateWithFlags(gpuStream_t* s, unsigned) {
  static int dummy;
  *s = &dummy;
  return gpuSuccess;
}
inline gpuError_t gpuStreamSynchronize(gpuStream_t) { return gpuSuccess; }
inline gpuError_t gpuEventCreateWithFlags(gpuEvent_t* e, unsigned) {
  *e = new EmuEvent();
  return gpuSuccess;
}
inline gpuError_t gpuEventRecord(gpuEvent_t e, gpuStream_t) {
  e->t = std::chrono::steady_clock::now();
  return gpuSuccess;
}
inline gpuError_t gpuEventSynchronize(gpuEvent_t) { return gpuSuccess; }
inline gpuError_t gpuEventElapsedTime(float* ms, gpuEvent_t a, gpuEvent_t b) {
  *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
  return gpuSuccess;
}
inline gpuError_t gpuEventDestroy(gpuEvent_t e) {
  delete e;
  return gpuSuccess;
}
inline gpuError_t gpuDriverGetVersion(int* v) {
  *v = 0;
  return gpuSuccess;
}
inline gpuError_t gpuRuntimeGetVersion(int* v) {
  *v = 0;
  return gpuSuccess;
}
inline gpuError_t gpuStreamBeginCapture(gpuStream_t, int) { return gpuErrorNotSupported; }
inline gpuError_t gpuStreamEndCapture(gpuStream_t, gpuGraph_t*) { return gpuErrorNotSupported; }
inline gpuError_t gpuGraphInstantiateWithFlags(gpuGraphExec_t*, gpuGraph_t, unsigned long long) { return gpuErrorNotSupported; }
inline gpuError_t gpuGraphLaunch(gpuGraphExec_t, gpuStream_t) { return gpuErrorNotSupported; }
inline gpuError_t gpuGraphExecDestroy(gpuGraphExec_t) { return gpuSuccess; }
inline gpuError_t gpuGraphDestroy(gpuGraph_t) { return gpuSuccess; }

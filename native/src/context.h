// State and helpers that the Node-API glue's files share (addon.cpp: discovery, memory,
// submissions; launch.cpp: kernel launches and graphs).
#pragma once

#include <napi.h>

#include <string>

#include "blas.h"
#include "gpu_runtime.h"

namespace parallm {

struct Context {
  bool open = false;
  int device = 0;
  gpuStream_t stream = nullptr;
  Blas blas;
};
extern Context ctx;

std::string gpu_error(gpuError_t e);
/** Throws a JavaScript error naming `what` unless e is success. */
void check(Napi::Env env, gpuError_t e, const char* what);
void require_open(Napi::Env env);

// launch.cpp
Napi::Value Layouts(const Napi::CallbackInfo& info);
Napi::Value Launch(const Napi::CallbackInfo& info);
Napi::Value Profile(const Napi::CallbackInfo& info);
Napi::Value CaptureBegin(const Napi::CallbackInfo& info);
Napi::Value CaptureEnd(const Napi::CallbackInfo& info);
Napi::Value GraphLaunch(const Napi::CallbackInfo& info);
Napi::Value GraphDestroy(const Napi::CallbackInfo& info);

}  // namespace parallm

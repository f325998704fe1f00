#!/usr/bin/env bash
# npm's install hook: builds the native addon where a CUDA or HIP compiler is on the PATH and
# carries on without it otherwise. Never fails the install (webgpu and cpu need no addon).
# PARALLM_SKIP_NATIVE=1 skips it (CI builds the addon itself, with warnings as errors).
cd "$(dirname "$0")/.." || exit 0
[[ -n ${PARALLM_SKIP_NATIVE:-} ]] && exit 0
if ! command -v nvcc >/dev/null && ! command -v hipcc >/dev/null; then
  echo "parallm: no nvcc or hipcc on the PATH, so the native backend is not built (webgpu and cpu work; npm run build:native later)"
  exit 0
fi
mkdir -p native/build
if bash scripts/build-native.sh auto > native/build/install.log 2>&1; then
  tail -1 native/build/install.log
else
  echo "parallm: the native addon did not build (see native/build/install.log); webgpu and cpu are unaffected"
fi
exit 0

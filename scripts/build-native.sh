#!/usr/bin/env bash
# Builds the native backend's addon (native/CMakeLists.txt) with the CUDA or HIP compiler at hand.
#   scripts/build-native.sh [auto|cuda|hip] [--werror] [--build-dir DIR]
# auto (the default) takes nvcc, else hipcc. The addon lands in DIR/parallm_native.node
# (default native/build, where the backend looks for it; PARALLM_NATIVE_ADDON points elsewhere).
# Needs cmake and the npm packages node-api-headers and node-addon-api (npm ci): no network.
set -euo pipefail
cd "$(dirname "$0")/.."
vendor=auto
werror=OFF
dir=native/build
while [[ $# -gt 0 ]]; do
  case $1 in
    auto | cuda | hip) vendor=$1 ;;
    --werror) werror=ON ;;
    --build-dir) dir=$2; shift ;;
    *) echo "build-native: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
if [[ $vendor == auto ]]; then
  if command -v nvcc >/dev/null; then vendor=cuda
  elif command -v hipcc >/dev/null; then vendor=hip
  else echo "build-native: neither nvcc (CUDA) nor hipcc (HIP) is on the PATH" >&2; exit 3
  fi
fi
command -v cmake >/dev/null || { echo "build-native: cmake is not installed" >&2; exit 3; }
for d in node_modules/node-api-headers/include node_modules/node-addon-api; do
  [[ -d $d ]] || { echo "build-native: $d is missing: run npm ci first" >&2; exit 3; }
done
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
# Debian's hipcc targets NVIDIA when nvcc is also installed: ask for AMD explicitly
[[ $vendor == hip ]] && export HIP_PLATFORM=amd
# a build dir configured for the other vendor (or other flags) is reconfigured from scratch
if [[ -f $dir/CMakeCache.txt ]] && ! grep -q "^PARALLM_GPU:STRING=$vendor\$" "$dir/CMakeCache.txt"; then rm -rf "$dir"; fi
cmake -S native -B "$dir" "${generator[@]}" -DPARALLM_GPU="$vendor" -DPARALLM_WERROR="$werror" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$dir" -j "$(nproc)"
echo "build-native: $vendor addon at $dir/parallm_native.node"

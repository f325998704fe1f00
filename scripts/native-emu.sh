#!/usr/bin/env bash
# The native kernels' logic without a GPU: builds the addon for the CPU emulator (native/emu:
# each GPU thread a fiber, barriers and warp shuffles as fiber switches) and runs the native
# parity suite on it. Slow (about a minute), and blind to what only a GPU shows (races between blocks,
# memory ordering, performance, cuBLAS, graphs), but every index, mask and reduction is checked.
#   scripts/native-emu.sh [32|64]      # warp width: 32 (NVIDIA, default) or 64 (AMD)
set -euo pipefail
cd "$(dirname "$0")/.."
warp=${1:-32}
dir=native/build-emu$warp
cmake -S native -B "$dir" -DPARALLM_GPU=emu -DPARALLM_EMU_WARP="$warp" $(command -v ninja >/dev/null && echo -G Ninja) >/dev/null
cmake --build "$dir" -j "$(nproc)" >/dev/null
# the op parity suite, the device tests and the model fixtures vs HF (about a minute on 2 cores)
PARALLM_NATIVE_ADDON=$PWD/$dir/parallm_native.node PARALLM_TEST_BACKENDS=native \
  npx vitest run test/ops test/device test/model/forward.test.ts

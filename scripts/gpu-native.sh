#!/usr/bin/env bash
# The native backend on the GPU machine: the addon built elsewhere (native/build/parallm_native.node,
# carried over; the GPU machine needs no compiler), its libraries, then the parity suite of every
# op on `native` against the CPU reference, the device tests and the model fixtures vs HF.
#   source .device/setup.sh && scripts/gpu-native.sh              # parity suite
#   source .device/setup.sh && scripts/gpu-native.sh compare      # parallm kernels compare (webgpu | native)
# Writes under $OUT (or ./gpu-out): gpu.txt, addon-ldd.txt, native-info.txt, native-parity.log,
# native-summary.txt. Exit status: that of the parity run (0 = every test passed).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
addon=${PARALLM_NATIVE_ADDON:-native/build/parallm_native.node}
if [[ ! -f $addon ]]; then
  echo "gpu-native: no $addon. Build it on the CPU machine (npm run build:native) and carry native/build/parallm_native.node" | tee "$out/native-summary.txt"
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
{ ldd "$addon"; readelf -d "$addon" | grep NEEDED; } > "$out/addon-ldd.txt" 2>&1

# cuBLAS: the loader path first (the CUDA toolkit's libcublas.so.13), else PyTorch's pip wheel
if [[ -z ${PARALLM_CUBLAS_PATH:-} ]] && ! ldconfig -p | grep -q 'libcublas\.so\.1[23] '; then
  wheel=$(python3 - <<'PY' 2>/dev/null
import glob, site, sys
for d in site.getsitepackages() + [site.getusersitepackages()]:
    for lib in sorted(glob.glob(d + "/nvidia/cublas/lib/libcublas.so.*"), reverse=True):
        print(lib); sys.exit(0)
PY
  )
  [[ -n $wheel ]] && export PARALLM_CUBLAS_PATH=$wheel
fi
echo "PARALLM_CUBLAS_PATH=${PARALLM_CUBLAS_PATH:-(loader path)}" > "$out/native-info.txt"

# the device as the backend sees it (also: which library matmul uses)
timeout 60 node --import tsx -e "
  import('./src/device/index.ts').then(async ({ createDevice }) => {
    const d = await createDevice('native');
    console.log(JSON.stringify({ info: d.info, gpu: d.gpu }, null, 1));
    d.destroy();
  }).catch((e) => { console.error(e.name + ': ' + e.message); process.exit(1); });
" >> "$out/native-info.txt" 2>&1
cat "$out/native-info.txt"

# `compare` (or `compare-quick`): the kernel comparison only, webgpu beside native (its own call:
# two op benchmarks take a few minutes)
if [[ ${1:-} == compare || ${1:-} == compare-quick ]]; then
  quick=(); [[ $1 == compare-quick ]] && quick=(--quick)
  timeout 540 node bin/parallm.js kernels compare "${quick[@]}" --out "$out" 2>&1 | grep -v '^Warning' | tee "$out/kernels-compare.log" | tail -60
  exit "${PIPESTATUS[0]}"
fi

# every op on native against the CPU reference, the device tests, the engine and HF fixtures
PARALLM_TEST_GPU=1 PARALLM_TEST_BACKENDS=native timeout 330 npx vitest run test/ops test/device test/model/forward.test.ts test/engine/engine.test.ts \
  --reporter=verbose > "$out/native-parity.log" 2>&1
rc=$?
# the engine and the model again with CUDA graphs replaying repeated runs of ops
PARALLM_NATIVE_GRAPHS=1 PARALLM_TEST_GPU=1 PARALLM_TEST_BACKENDS=native timeout 200 npx vitest run test/model/forward.test.ts test/engine/engine.test.ts \
  --reporter=verbose >> "$out/native-parity.log" 2>&1
rc2=$?
[[ $rc -eq 0 ]] && rc=$rc2
sed -i 's/\x1b\[[0-9;]*m//g' "$out/native-parity.log"
{
  echo "exit status $rc"
  grep -E "^ *(Test Files|Tests) " "$out/native-parity.log"
  grep -E "×|FAIL" "$out/native-parity.log" | head -60
  grep -E "parity harness seed" "$out/native-parity.log" | head -1
} | tee "$out/native-summary.txt"
exit $rc

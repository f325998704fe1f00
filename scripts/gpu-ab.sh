#!/usr/bin/env bash
# Same-machine A/B of two commits on the GPU machine: the throughput benchmark (or any command)
# run alternately on this tree and on a base commit's tree, so that both see the same card,
# clocks and driver. The device copies only the working tree, so the base travels as a tarball.
#
# Here (before the device call):
#   scripts/gpu-ab.sh pack <base-commit>          # writes .ab/base.tar.xz (git archive; .ab is ignored)
# There (carry .device and .ab):
#   source .device/setup.sh && scripts/gpu-ab.sh run <base> <new> [rounds] [bench throughput args...]
#     <base>/<new>: the commits' short hashes, as the results should name them (the tree there
#     has no .git); rounds (default 2) of new then base; the arguments default to
#     --dummy llama-2-7b --backend webgpu --num-prompts 1000. Results: $OUT/ab/<new|base><round>.json
#     and one line each in $OUT/ab/summary.txt.
set -euo pipefail
cmd=${1:?usage: gpu-ab.sh pack <base> | run <base> <new> [rounds] [args...]}
case $cmd in
  pack)
    base=${2:?base commit}
    root=$(git rev-parse --show-toplevel)
    mkdir -p "$root/.ab"
    grep -qx '/.ab/' "$root/.git/info/exclude" 2>/dev/null || echo '/.ab/' >> "$root/.git/info/exclude"
    git -C "$root" archive "$base" src shaders bin bench scripts package.json tsconfig.json | xz -6 > "$root/.ab/base.tar.xz"
    echo "$root/.ab/base.tar.xz: $(git -C "$root" rev-parse --short "$base"), $(du -h "$root/.ab/base.tar.xz" | cut -f1)"
    ;;
  run)
    base=${2:?base commit}
    new=${3:?new commit}
    rounds=${4:-2}
    shift $(( $# >= 4 ? 4 : 3 ))
    args=("$@")
    [[ ${#args[@]} -gt 0 ]] || args=(--dummy llama-2-7b --backend webgpu --num-prompts 1000)
    # paths in this tree (a --model folder) made absolute: the base tree has no test/ or data/
    for j in "${!args[@]}"; do [[ -e ${args[$j]} ]] && args[$j]=$(realpath "${args[$j]}"); done
    : "${OUT:?set OUT, the device output folder}"
    tree=$PWD
    btree=/tmp/ab-base
    rm -rf "$btree" && mkdir -p "$btree" "$OUT/ab"
    tar -xJf .ab/base.tar.xz -C "$btree"
    ln -sfn "$tree/node_modules" "$btree/node_modules"
    for ((i = 1; i <= rounds; i++)); do
      for side in new base; do
        dir=$tree commit=$new
        [[ $side == base ]] && dir=$btree commit=$base
        (cd "$dir" && PARALLM_COMMIT=$commit node bin/parallm.js bench throughput "${args[@]}" --out "$OUT/ab/$side$i") > "$OUT/ab/$side$i.log" 2>&1
        mv "$OUT/ab/$side$i"/*.json "$OUT/ab/$side$i.json" && rmdir "$OUT/ab/$side$i"
        python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], sys.argv[3], round(d['totalTokensPerS'], 1), 'idle', d['gpuIdleFraction'])" \
          "$OUT/ab/$side$i.json" "$side$i" "$commit" | tee -a "$OUT/ab/summary.txt"
      done
    done
    ;;
  *) echo "gpu-ab.sh: unknown command $cmd (pack or run)" >&2; exit 2 ;;
esac

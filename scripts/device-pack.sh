#!/usr/bin/env bash
# ../shared/device/pack.sh, then node_modules re-packed without what no GPU-machine command uses
# (the type checker, type declarations, and the openai client of the server tests), so
# that .device plus the tree (the embedded model included) stay under the 64 MiB carry limit.
# SLIM=1 also leaves out vega (the serving figure) and lightningcss (vite's CSS, unused by the tests),
# for calls that carry native/build too.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
bash ../shared/device/pack.sh >/dev/null
tar --exclude='node_modules/webgpu/dist/darwin-*' --exclude='node_modules/webgpu/dist/win32-*' \
    --exclude='node_modules/webgpu/dist/linux-arm64' --exclude='node_modules/.cache' \
    --exclude='node_modules/typescript' --exclude='node_modules/@types' --exclude='node_modules/openai' \
    ${SLIM:+--exclude='node_modules/vega*' --exclude='node_modules/d3-*' --exclude='node_modules/lightningcss*'} -cf - node_modules | xz -T0 -6 > .device/node_modules.tar.xz
tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
extra=$( (du -scb native/build 2>/dev/null || true) | tail -1 | cut -f1)
dev=$(du -sb .device | cut -f1)
echo "carry [.device${extra:+, native/build}]: about $(( (tree + dev + ${extra:-0}) / 1048576 )) MiB of 64 (tree $(( tree / 1048576 )), .device $(( dev / 1048576 )), native/build $(( ${extra:-0} / 1048576 )))"

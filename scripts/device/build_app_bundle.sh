#!/bin/bash
# Builds `doze` and `doze-worker` with CUDA here (no GPU needed) and bundles them with the libraries the H100
# machine lacks into h100/app (git-ignored), for scripts/device/model_check.sh there (`carry: ["h100", ".cache/
# tokenizer-qwen3-3.7.2"]`).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
build=${BUILD_DIR:-build-h100}
if [[ ! -f $build/build.ninja ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a
fi
cmake --build "$build" -j2 --target doze doze-worker
rm -rf h100/app
../shared/bin/bundle-libs h100/app "$build/bin/doze" "$build/bin/doze-worker"

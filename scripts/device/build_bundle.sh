#!/bin/bash
# Builds the GPU test and benchmark binaries here (no GPU needed) and bundles them with the libraries the H100
# machine lacks into h100/cuda (git-ignored; h100/bundle belongs to others), ready to travel with `carry: ["h100"]`.
# usage: scripts/device/build_bundle.sh          (BUILD_DIR=build-h100 by default)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
build=${BUILD_DIR:-build-h100}
targets=(doze_kernels_test doze_backend_cuda_test doze_kernel_bench)
if [[ ! -f $build/build.ninja ]]; then
  cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a
fi
cmake --build $build -j2 --target "${targets[@]}"
rm -rf h100/cuda
../shared/bin/bundle-libs h100/cuda $build/tests/doze_kernels_test $build/tests/doze_backend_cuda_test \
  $build/bin/doze_kernel_bench

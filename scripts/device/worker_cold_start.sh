#!/bin/bash
# Runs on the GPU machine, from the repo root: doze bench-cold over the full Qwen2.5-0.5B shape (a random bf16
# checkpoint written there by doze make-model with the real tokenizer), with prebuilt binaries bundled here by
#   cmake -B build-h100 -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a
#   cmake --build build-h100 -j2 --target doze doze-worker
#   ../shared/bin/bundle-libs h100/bundle build-h100/bin/doze build-h100/bin/doze-worker
# Targets: spawn to first token <= 600 ms median, wake to first token <= 50 ms.
# usage: scripts/device/worker_cold_start.sh [BUNDLE_DIR] [RUNS]      (default h100/bundle, 10)
set -euo pipefail
bundle=${1:-h100/bundle}
runs=${2:-10}
out=${OUT:-worker-cold-start-out}
mkdir -p "$out"
export LD_LIBRARY_PATH=$bundle/lib:/usr/local/cuda/lib64
model=${MODEL_DIR:-/tmp/doze-qwen2.5-0.5b-random}
tokenizer=${TOKENIZER:-.cache/tokenizer-qwen3-3.7.2/tokenizer.json}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
if [[ ! -s $model/model.safetensors ]]; then
  "$bundle/bin/doze" make-model --preset qwen2.5-0.5b --tokenizer "$tokenizer" --out "$model"
fi
# bench-cold finds doze-worker beside doze.
"$bundle/bin/doze" bench-cold --model "$model" --backend cuda --runs "$runs" | tee "$out/bench_cold.txt"

#!/bin/bash
# Runs on the GPU machine (16 cores; no GPU needed), from the repo root, over doze-gateway, the stand-in worker and
# the load generator bundled into h100/gw by scripts/device/build_gateway_bundle.sh: bench/gateway_bench.sh with the
# gateway pinned to 2 cores, DOZE_BENCH_RUNS runs (3) of its tests, after the loopback floor under a step's
# burst (bench/loopback_send.cc: the sender on CPU 0, the readers on CPUs 2 and up).
# usage: scripts/device/gateway_check.sh [BUNDLE_DIR]      (default h100/gw; carry it and .cache/tokenizer-qwen3-3.7.2)
set -uo pipefail
bundle=${1:-h100/gw}
export LD_LIBRARY_PATH=$PWD/$bundle/lib
mkdir -p "$bundle/tests"
ln -sf ../bin/doze-fake-worker "$bundle/tests/doze-fake-worker"
nproc
date -u +%FT%TZ
"$bundle/bin/doze_loopback_send_bench" --sender-cpus 0 --reader-cpus "2-$(($(nproc) - 1))"
bench/gateway_bench.sh "$bundle" .cache/tokenizer-qwen3-3.7.2/tokenizer.json 1000 200 10

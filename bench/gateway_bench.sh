#!/usr/bin/env bash
# gateway_bench.sh BUILD_DIR TOKENIZER_JSON [RATE] [STREAMS] [SECONDS]: the latency doze-gateway adds, on its own
# cores. The gateway runs on cores 0-1 (DOZE_GATEWAY_CPUS), the stand-in worker (no per-token delay for the rate
# test, 20 ms per token for the streams) and the load generator on the others, so only the gateway's own work is
# measured: end to end minus the worker's reported total_ms. Prints one JSON line per test.
set -euo pipefail
build=$1 tokenizer=$2 rate=${3:-1000} streams=${4:-200} seconds=${5:-10}
gateway_cpus=${DOZE_GATEWAY_CPUS:-0-1}
other_cpus=${DOZE_LOAD_CPUS:-2-$(($(nproc) - 1))}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"; true' EXIT
mkdir -p "$work/model"
cp "$tokenizer" "$work/model/tokenizer.json"
echo '{"max_position_embeddings": 32768}' > "$work/model/config.json"

run() {  # run NAME TOKEN_DELAY_MS LOAD_ARGS...
  local name=$1 delay=$2
  shift 2
  cat > "$work/doze.yaml" <<YAML
server: { listen: 127.0.0.1:0, io_threads: ${DOZE_BENCH_IO_THREADS:-2}, max_connections: 4096 }
model: { path: $work/model, backend: cpu }
workers: { binary: $build/tests/doze-fake-worker, socket_dir: $work/sockets, max_queue: 4096 }
functions:
  copy_polish: { system_prompt: "你是一名资深电商文案编辑。", worker: { max_in_flight: 4096 } }
YAML
  DOZE_FAKE_TOKEN_DELAY_MS=$delay DOZE_FAKE_CPUS=$other_cpus DOZE_LOG_LEVEL=warning \
    taskset -c "$gateway_cpus" "$build/bin/doze-gateway" --config "$work/doze.yaml" > "$work/ready" 2> "$work/$name.log" &
  local pid=$!
  for _ in $(seq 100); do grep -q port "$work/ready" 2>/dev/null && break; sleep 0.1; done
  local port
  port=$(grep -o '"port":[0-9]*' "$work/ready" | cut -d: -f2)
  # Warm-up: the first request starts the worker.
  taskset -c "$other_cpus" "$build/bin/doze_gateway_load" --port "$port" --mode rate --rate 50 --seconds 1 \
    --connections 4 > /dev/null
  local ticks_before ticks_after start_ns end_ns
  ticks_before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  start_ns=$(date +%s%N)
  taskset -c "$other_cpus" "$build/bin/doze_gateway_load" --port "$port" "$@"
  ticks_after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  end_ns=$(date +%s%N)
  # The gateway's CPU use during the run, in cores (100 clock ticks a second).
  awk -v t=$((ticks_after - ticks_before)) -v ns=$((end_ns - start_ns)) \
    'BEGIN { printf "{\"gateway_cpu_cores\": %.2f}\n", t / 100 / (ns / 1e9) }'
  kill -TERM "$pid"
  wait "$pid" || true
}

run rate 0 --mode rate --rate "$rate" --seconds "$seconds" --connections 64 --max-tokens 1
run streams 20 --mode streams --streams "$streams" --seconds "$seconds" --max-tokens 32

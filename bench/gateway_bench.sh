#!/usr/bin/env bash
# gateway_bench.sh BUILD_DIR TOKENIZER_JSON [RATE] [STREAMS] [SECONDS]: the latency doze-gateway adds, on its own
# cores. The gateway runs on two CPUs (DOZE_GATEWAY_CPUS; see below), the stand-in worker (no per-token delay for the rate
# test, 20 ms per token for the streams) and the load generator on the others (DOZE_LOAD_CPUS), so only the
# gateway's own work is measured: end to end minus the worker's reported total_ms. The streams test also
# measures each streamed message: the worker stamps every token's text with its send time
# (DOZE_FAKE_STAMP_TOKENS=1) and the load generator subtracts it from the chunk's arrival (--stamped-tokens 1).
# It splits that time: the gateway's own part of each message (its doze_stream_message_gateway_seconds
# histogram, read from /metrics before and after) and, after the test, a direct baseline with no gateway: the
# same streams read straight from the stand-in worker over gRPC (--direct-worker; DOZE_BENCH_DIRECT=0 skips it);
# the rate test likewise runs its schedule straight to the worker after the gateway's run (the worker hop's
# own added time, part of the gateway's figure).
#
# Each run starts a fresh gateway for the rate test, then another for the streams test; DOZE_BENCH_RUNS (3)
# runs. Prints one JSON line per test and run (the load generator's, with the run number and the gateway's CPU
# use in cores), one summary JSON line per test (every run's percentiles, their median and worst), then a table.
# DOZE_BENCH_GATEWAY and DOZE_BENCH_FAKE_WORKER replace the two binaries (before/after comparisons);
# DOZE_BENCH_IO_THREADS, DOZE_BENCH_GRPC_THREADS and DOZE_BENCH_DELIVERY_THREADS set server.io_threads (2),
# server.grpc_threads (1) and server.delivery_threads (1),
# DOZE_BENCH_BUSY_POLL server.busy_poll (0s);
# The "spread" test is the streams test with the streams' first requests spread over one stream's length
# (--start-spread-ms 640) instead of all at once, and the stand-in on its step clock (DOZE_FAKE_STEP_CLOCK=1:
# every running call still gets its token at the same tick, as from an engine's step): independent users'
# requests arrive apart, while the lock-step "streams" test sends its 200 requests in one burst each time
# its streams end together.
# The "polled" test is the spread test read by DOZE_BENCH_POLL_THREADS (4) event-loop threads that poll
# (--poll-reads 1) instead of sleeping: on one host each loopback send also runs the reader's receive path
# and, for a sleeping reader, its wake-up on the gateway's core, which a remote client's machine would run;
# polling readers take the wake-up off (bench/loopback_send.cc measures that cost alone).
# The "floor" test is the rate test against doze_echo_server (bench/echo_server.cc) on the gateway's CPUs: a
# canned answer per request, no gateway and no worker, so its percentiles are what the host's loopback TCP
# and scheduling alone add, the floor under the rate test's figures on that host and minute.
# DOZE_BENCH_FLOOR_THREADS and DOZE_BENCH_FLOOR_WORK_US set the echo server's --threads (io_threads) and
# --work-us (0); DOZE_BENCH_THREAD_CPU=1 prints the gateway's threads' CPU ticks and context switches by name
# after each test (stderr).
# DOZE_BENCH_TESTS picks the tests ("rate floor streams spread polled"); DOZE_BENCH_STREAM_THREADS sets the load
# generator's --stream-threads for streams and spread (0: a blocking thread per stream).
# By default the gateway's two CPUs are on two physical cores and nothing else runs on their SMT siblings (the
# load generator on a sibling would share the gateway's core, and the host's neighbours are not a load
# generator); DOZE_BENCH_SHARE_SIBLINGS=1 gives the load every other CPU, siblings included. Each run's JSON
# line carries the CPUs used and the time the hypervisor took from the gateway's CPUs (steal, /proc/stat).
# On a machine shared with other work, DOZE_BENCH_CHRT="-f 10" runs the gateway, the worker and the load
# generator real-time (chrt), so that other processes cannot preempt them and only the gateway's own structure
# shows; leave it unset for the figure of record.
set -euo pipefail
build=$1 tokenizer=$2 rate=${3:-1000} streams=${4:-200} seconds=${5:-10}

# The CPUs named by a kernel CPU list ("0-3,8"), one a line.
expand_cpus() { tr ',' '\n' <<< "$1" | awk -F- '{ for (c = $1; c <= ($2 == "" ? $1 : $2); ++c) print c }'; }
# Picks two CPUs on distinct physical cores for the gateway and, unless DOZE_BENCH_SHARE_SIBLINGS=1, leaves
# their siblings out of the load's CPUs.
pick_cpus() {
  local cpu n=$(nproc) chosen=() reserved=" "
  for ((cpu = 0; cpu < n && ${#chosen[@]} < 2; ++cpu)); do
    [[ $reserved == *" $cpu "* ]] && continue
    chosen+=("$cpu")
    local siblings=$cpu
    [[ ${DOZE_BENCH_SHARE_SIBLINGS:-0} == 1 ]] ||
      siblings=$(cat "/sys/devices/system/cpu/cpu$cpu/topology/thread_siblings_list" 2> /dev/null || echo "$cpu")
    reserved+="$(expand_cpus "$siblings" | tr '\n' ' ')"
  done
  gateway_cpus=$(IFS=,; echo "${chosen[*]}")
  other_cpus=$(for ((cpu = 0; cpu < n; ++cpu)); do [[ $reserved == *" $cpu "* ]] || echo "$cpu"; done | paste -sd,)
}
pick_cpus
gateway_cpus=${DOZE_GATEWAY_CPUS:-$gateway_cpus}
other_cpus=${DOZE_LOAD_CPUS:-$other_cpus}
# Milliseconds of steal (time the hypervisor ran something else) summed over the gateway's CPUs so far.
steal_ms() {
  local list
  list=$(expand_cpus "$gateway_cpus" | sed 's/^/cpu/' | paste -sd' ')
  awk -v cpus=" $list " -v hz="$(getconf CLK_TCK)" 'index(cpus, " " $1 " ") { s += $9 } END { printf "%d", s * 1000 / hz }' /proc/stat
}
runs=${DOZE_BENCH_RUNS:-3}
rate_args=(--mode rate --rate "$rate" --seconds "$seconds" --connections 64 --max-tokens 1)  # rate and floor
tests=${DOZE_BENCH_TESTS:-rate floor streams spread polled}
gateway=${DOZE_BENCH_GATEWAY:-$build/bin/doze-gateway}
fake_worker=${DOZE_BENCH_FAKE_WORKER:-$build/tests/doze-fake-worker}
echo_server=$build/bin/doze_echo_server
realtime=()
if [[ -n ${DOZE_BENCH_CHRT:-} ]]; then read -ra realtime <<< "chrt ${DOZE_BENCH_CHRT}"; fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"; true' EXIT
mkdir -p "$work/model"
cp "$tokenizer" "$work/model/tokenizer.json"
echo '{"max_position_embeddings": 32768, "vocab_size": 151936}' > "$work/model/config.json"

# Waits for the server started with its stdout in $work/ready to print its port; prints the port.
ready_port() {
  for _ in $(seq 100); do grep -q port "$work/ready" 2>/dev/null && break; sleep 0.1; done
  grep -o '"port": *[0-9]*' "$work/ready" | grep -o '[0-9]*$'
}

# measure NAME RUN PID LOAD_ARGS...: runs the load generator against the server PID (its CPU measured), and
# records its line with the test, run, CPUs and the steal on the gateway's CPUs meanwhile.
measure() {
  local name=$1 run_index=$2 pid=$3 line steal_before
  shift 3
  steal_before=$(steal_ms)
  line=$("${realtime[@]}" taskset -c "$other_cpus" "$build/bin/doze_gateway_load" --gateway-pid "$pid" "$@" || true)
  local where="\"gateway_cpus\":\"$gateway_cpus\",\"load_cpus\":\"$other_cpus\",\"gateway_cpu_steal_ms\":$(($(steal_ms) - steal_before))"
  echo "{\"run\":$run_index,\"test\":\"$name\",$where,${line#\{}" | tee -a "$work/results"
}

run() {  # run NAME RUN TOKEN_DELAY_MS STAMP_TOKENS STEP_CLOCK LOAD_ARGS...
  local name=$1 run_index=$2 delay=$3 stamp=$4 step_clock=$5
  shift 5
  cat > "$work/doze.yaml" <<YAML
server:
  listen: 127.0.0.1:0
  io_threads: ${DOZE_BENCH_IO_THREADS:-2}
  grpc_threads: ${DOZE_BENCH_GRPC_THREADS:-1}
  delivery_threads: ${DOZE_BENCH_DELIVERY_THREADS:-1}
  busy_poll: ${DOZE_BENCH_BUSY_POLL:-0s}
  max_connections: 4096
model: { path: $work/model, backend: cpu }
workers: { binary: $fake_worker, socket_dir: $work/sockets, max_queue: 4096 }
functions:
  copy_polish: { system_prompt: "你是一名资深电商文案编辑。", worker: { max_in_flight: 4096 } }
YAML
  : > "$work/ready"
  DOZE_FAKE_TOKEN_DELAY_MS=$delay DOZE_FAKE_STAMP_TOKENS=$stamp DOZE_FAKE_STEP_CLOCK=$step_clock \
    DOZE_FAKE_CPUS=$other_cpus DOZE_LOG_LEVEL=warning \
    "${realtime[@]}" taskset -c "$gateway_cpus" "$gateway" --config "$work/doze.yaml" > "$work/ready" 2> "$work/$name.log" &
  local pid=$! port
  port=$(ready_port)
  # Warm-up: the first request starts the worker.
  taskset -c "$other_cpus" "$build/bin/doze_gateway_load" --port "$port" --mode rate --rate 50 --seconds 1 \
    --connections 4 > /dev/null
  measure "$name" "$run_index" "$pid" --port "$port" "$@"
  if [[ ${DOZE_BENCH_THREAD_CPU:-0} == 1 ]]; then  # the gateway's threads by name: CPU ticks, context switches
    for task in /proc/$pid/task/*; do
      echo "thread $(tr ' ' _ < "$task/comm") $(awk '{ print $14 + $15 }' "$task/stat") $(grep -h ctxt_switches "$task/status" | awk '{ s += $2 } END { print s }')"
    done | sort -k2 | awk '{ t[$2] += $3; c[$2] += $4; n[$2]++ } END { for (k in t) printf "%s x%d: %d ticks, %d switches; ", k, n[k], t[k], c[k]; print "" }' >&2
  fi
  kill -TERM "$pid"
  wait "$pid" || true
}

run_floor() {  # run_floor RUN: the rate test against doze_echo_server on the gateway's CPUs
  local run_index=$1
  : > "$work/ready"
  "${realtime[@]}" taskset -c "$gateway_cpus" "$echo_server" --threads "${DOZE_BENCH_FLOOR_THREADS:-${DOZE_BENCH_IO_THREADS:-2}}" \
    --work-us "${DOZE_BENCH_FLOOR_WORK_US:-0}" > "$work/ready" &
  local pid=$!
  measure floor "$run_index" "$pid" --port "$(ready_port)" "${rate_args[@]}"
  kill "$pid"
  wait "$pid" 2> /dev/null || true
}

for ((i = 1; i <= runs; ++i)); do
  for test in $tests; do
    case $test in
      rate)
        direct=()
        [[ ${DOZE_BENCH_DIRECT:-1} != 0 ]] && direct=(--direct-worker "unix:$work/sockets/copy_polish.sock")
        run rate "$i" 0 0 0 "${rate_args[@]}" "${direct[@]}"
        ;;
      floor) run_floor "$i" ;;
      streams | spread | polled)
        # spread: the streams' first requests spread over one stream's length (32 tokens of 20 ms), as
        # independent users' are, on a stand-in whose step clock still gives every stream its token at once.
        spread_ms=0 step_clock=0 threads=${DOZE_BENCH_STREAM_THREADS:-0} poll=0
        [[ $test != streams ]] && spread_ms=640 step_clock=1
        [[ $test == polled ]] && threads=${DOZE_BENCH_POLL_THREADS:-4} poll=1
        direct=()
        if [[ ${DOZE_BENCH_DIRECT:-1} != 0 ]]; then
          direct=(--direct-worker "unix:$work/sockets/copy_polish.sock")
          [[ $test != streams ]] && direct+=(--direct-spread-ms "$spread_ms")
        fi
        run "$test" "$i" 20 1 "$step_clock" --mode streams --streams "$streams" --seconds "$seconds" \
          --max-tokens 32 --stamped-tokens 1 --stream-threads "$threads" --poll-reads "$poll" \
          --start-spread-ms "$spread_ms" "${direct[@]}"
        ;;
    esac
  done
done

# The summary: per test, every run's added p50/p99/p99.9 and CPU, their median and the worst run; for the
# streams, also the per-message added p50/p99 (message_added_ms), the gateway's own part of it
# (message_gateway_*_ms) and the direct baseline (message_direct_*_ms).
awk '
  function field(line, key,   m) { return match(line, "\"" key "\":[-0-9.]+") ? substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3) : "null" }
  function sorted_median(list,   a, n, i, j, t) {
    n = split(list, a, ",")
    for (i = 2; i <= n; ++i) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; --j) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : sprintf("%.3f", (a[n / 2] + a[n / 2 + 1]) / 2)
  }
  function worst(list,   a, n, i, w) { n = split(list, a, ","); w = a[1]; for (i = 2; i <= n; ++i) if (a[i] + 0 > w + 0) w = a[i]; return w }
  function add(key, value) { lists[mode, key] = lists[mode, key] (lists[mode, key] == "" ? "" : ",") value }
  {
    mode = field($0, "mode"); if (match($0, "\"test\":\"[a-z]+\"")) mode = substr($0, RSTART + 8, RLENGTH - 9)
    if (!(mode in seen)) { seen[mode] = 1; order[++modes] = mode }
    added = substr($0, index($0, "\"added_ms\""))
    add("p50", field(added, "p50")); add("p99", field(added, "p99")); add("p999", field(added, "p999"))
    add("cpu", field($0, "gateway_cpu_cores")); add("errors", field($0, "errors")); count[mode]++
    if (index($0, "\"message_added_ms\"")) {
      message = substr($0, index($0, "\"message_added_ms\""))
      add("mp50", field(message, "p50")); add("mp99", field(message, "p99"))
      add("stamp_errors", field($0, "message_stamp_errors"))
      add("gp50", field($0, "message_gateway_p50_ms")); add("gp99", field($0, "message_gateway_p99_ms"))
      add("dp50", field($0, "message_direct_p50_ms")); add("dp99", field($0, "message_direct_p99_ms"))
    }
    if (index($0, "\"direct_added_ms\"")) {  # the rate test: the worker hop without the gateway
      direct = substr($0, index($0, "\"direct_added_ms\""))
      add("dp50", field(direct, "p50")); add("dp99", field(direct, "p99"))
    }
  }
  END {
    for (m = 1; m <= modes; ++m) {
      mode = order[m]
      printf "{\"summary\":\"%s\",\"runs\":%d,\"added_p50_ms\":[%s],\"added_p99_ms\":[%s],\"added_p999_ms\":[%s],", mode, count[mode], lists[mode, "p50"], lists[mode, "p99"], lists[mode, "p999"]
      printf "\"gateway_cpu_cores\":[%s],\"errors\":[%s],\"median_added_p50_ms\":%s,\"median_added_p99_ms\":%s,\"worst_added_p99_ms\":%s", lists[mode, "cpu"], lists[mode, "errors"], sorted_median(lists[mode, "p50"]), sorted_median(lists[mode, "p99"]), worst(lists[mode, "p99"])
      if (lists[mode, "mp99"] != "") {
        printf ",\"message_added_p50_ms\":[%s],\"message_added_p99_ms\":[%s],\"message_stamp_errors\":[%s],", lists[mode, "mp50"], lists[mode, "mp99"], lists[mode, "stamp_errors"]
        printf "\"median_message_added_p50_ms\":%s,\"median_message_added_p99_ms\":%s,\"worst_message_added_p99_ms\":%s", sorted_median(lists[mode, "mp50"]), sorted_median(lists[mode, "mp99"]), worst(lists[mode, "mp99"])
        printf ",\"message_gateway_p50_ms\":[%s],\"message_gateway_p99_ms\":[%s],\"message_direct_p50_ms\":[%s],\"message_direct_p99_ms\":[%s],", lists[mode, "gp50"], lists[mode, "gp99"], lists[mode, "dp50"], lists[mode, "dp99"]
        printf "\"median_message_gateway_p99_ms\":%s,\"median_message_direct_p99_ms\":%s", sorted_median(lists[mode, "gp99"]), sorted_median(lists[mode, "dp99"])
      } else if (lists[mode, "dp99"] != "") {
        printf ",\"direct_added_p50_ms\":[%s],\"direct_added_p99_ms\":[%s],\"median_direct_added_p99_ms\":%s", lists[mode, "dp50"], lists[mode, "dp99"], sorted_median(lists[mode, "dp99"])
      }
      printf "}\n"
    }
    printf "\n| test | runs | added p50 (median) | added p99 (median / worst) | added p99.9 (median) | per-message added p99 (median / worst) | gateway CPU (median) | per-message in the gateway p50 / p99 (median) | direct, no gateway: per message or request p50 / p99 (median) |\n|---|---|---|---|---|---|---|---|---|\n"
    for (m = 1; m <= modes; ++m) {
      mode = order[m]
      per_message = lists[mode, "mp99"] == "" ? "-" : sorted_median(lists[mode, "mp99"]) " / " worst(lists[mode, "mp99"]) " ms"
      in_gateway = lists[mode, "gp99"] == "" ? "-" : sorted_median(lists[mode, "gp50"]) " / " sorted_median(lists[mode, "gp99"]) " ms"
      direct = lists[mode, "dp99"] == "" ? "-" : sorted_median(lists[mode, "dp50"]) " / " sorted_median(lists[mode, "dp99"]) " ms"
      printf "| %s | %d | %s ms | %s / %s ms | %s ms | %s | %s cores | %s | %s |\n", mode, count[mode], sorted_median(lists[mode, "p50"]), sorted_median(lists[mode, "p99"]), worst(lists[mode, "p99"]), sorted_median(lists[mode, "p999"]), per_message, sorted_median(lists[mode, "cpu"]), in_gateway, direct
    }
  }' "$work/results"

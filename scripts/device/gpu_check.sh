#!/bin/bash
# Runs on the GPU machine, from the repo root, over binaries bundled by scripts/device/build_bundle.sh:
# the kernel and CUDA backend tests, a compute-sanitizer pass over a few kernel tests, then doze_kernel_bench.
# Logs go to $OUT (the device tool's output folder) or ./gpu-check-out; the last lines printed are the bench table.
# usage: scripts/device/gpu_check.sh [BUNDLE_DIR]      (default h100/cuda)
# QUICK=1 keeps the sanitizer to one memcheck pass over the fused decode GEMV, tensor-core decode and decode attention tests, for
# calls on a short device-time budget.
set -uo pipefail
bundle=${1:-h100/cuda}
out=${OUT:-gpu-check-out}
mkdir -p "$out"
export LD_LIBRARY_PATH=$bundle/lib:/usr/local/cuda/lib64
status=0

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem,temperature.gpu --format=csv
date -u +%FT%TZ

for test in doze_kernels_test doze_backend_cuda_test; do
  echo "== $test"
  timeout 200 "$bundle/bin/$test" --gtest_brief=1 >"$out/$test.log" 2>&1
  rc=$?
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |tests? ran|Failure|error" "$out/$test.log" | tail -n 25
  [[ $rc -eq 0 ]] || { echo "$test: exit $rc"; status=1; }
done

if [[ ${QUICK:-0} == 1 ]] && command -v compute-sanitizer >/dev/null; then
  echo "== compute-sanitizer memcheck (quick)"
  timeout 100 compute-sanitizer --tool memcheck --error-exitcode 9 "$bundle/bin/doze_kernels_test" \
    --gtest_filter='Gemv/DecodeProjectionTest.*/0:Gemv/DecodeProjectionTest.*/5:Mma/DecodeProjectionTest.*/4:Mma/DecodeProjectionTest.*/9:Mma/DecodeProjectionTest.*/12:BatchContext/DecodeTest.*/5' \
    --gtest_brief=1 >"$out/sanitizer_quick.log" 2>&1
  rc=$?
  tail -n 3 "$out/sanitizer_quick.log"
  grep -m 4 -B 2 -A 6 -E "^========= (Warning|Error)" "$out/sanitizer_quick.log"
  [[ $rc -eq 0 ]] || { echo "compute-sanitizer quick memcheck: exit $rc"; status=1; }
elif command -v compute-sanitizer >/dev/null; then
  echo "== compute-sanitizer memcheck and racecheck (a few kernel tests, one runner test)"
  declare -A filters=(
    [memcheck]='Batch/RowsTest.*/1:Batch/LinearTest.*/1:Tokens/RotaryTest.*/2:BatchContext/DecodeTest.*/5:PrefillTest.*:Batch/SamplingTest.*/1'
    [memcheck_runner]='CudaModelRunnerTest.GraphReplayMatchesEager'
    [racecheck]='BatchContext/DecodeTest.*/5:PrefillTest.SinglePrompts:Batch/SamplingTest.ArgmaxMatchesReference/0')
  for check in memcheck memcheck_runner racecheck; do
    filter=${filters[$check]}
    tool=${check%_runner}
    binary=doze_kernels_test
    [[ $check == *_runner ]] && binary=doze_backend_cuda_test
    timeout 80 compute-sanitizer --tool "$tool" --error-exitcode 9 "$bundle/bin/$binary" \
      --gtest_filter="$filter" --gtest_brief=1 >"$out/sanitizer_$check.log" 2>&1
    rc=$?
    tail -n 3 "$out/sanitizer_$check.log"
    grep -m 4 -B 2 -A 6 -E "^========= (Warning|Error)" "$out/sanitizer_$check.log"
    [[ $rc -eq 0 ]] || { echo "compute-sanitizer $check: exit $rc"; status=1; }
  done
fi

echo "== doze_kernel_bench"
timeout 200 "$bundle/bin/doze_kernel_bench" >"$out/kernel_bench.log" 2>&1
rc=$?
grep '^{"bench"' "$out/kernel_bench.log" >"$out/kernel_bench.json"
grep -v '^{"bench"' "$out/kernel_bench.log"
[[ $rc -eq 0 ]] || { echo "doze_kernel_bench: exit $rc"; status=1; }
exit $status

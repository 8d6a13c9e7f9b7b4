// Whole forward steps of CudaModelRunner on a random model of Qwen2.5-0.5B's shape (part of
// doze_kernel_bench).
#pragma once

#include <vector>

#include "bench/kernel_bench_util.h"

namespace doze::bench {

// Appends: TTFT of a 512-token prompt, and decode steps at batches 1 to 64 over 512-token contexts with the
// runner's default paths, with cuBLASLt alone (batches up to the tensor-core kernels' limit) and with the
// tensor-core kernels up to 64 rows (the batches above it), each with host logits (Forward), device logits
// (ForwardOnDevice) and device logits of ten steps queued back to back. With `max_batch` > 0: only the
// default paths' decode steps at batches from `min_batch` up to it.
void BenchDecodeSteps(std::vector<Result>& out, int max_batch = 0, int min_batch = 1);

// Appends: decode steps of two runners (each its own weights, KV cache and stream) at `batch` rows each,
// enqueued in turn so that the GPU may run them at once, against one runner at 2 x `batch` rows (when that
// is at most 64): whether two half batches overlapped beat one whole.
void BenchDecodePair(std::vector<Result>& out, int batch);

// Prints, for decode steps of the runner's default paths at `batch` rows (contexts of 512, steps queued),
// each kernel's and copy's share of a step from CUPTI's records (kernel_timeline.h): per kernel (name and
// grid), its calls, the time it added to the step's end (its end less the previous op's end, the last of
// the step before included, so the column sums to the step with the gap between steps) and its own span.
// `greedy`: the steps the engine runs at temperature 0 (the tokens chosen on the device and copied back,
// each step taking the one before's tokens on the device) instead of steps ending in logits. JSON, then a
// table.
void BenchTimeline(int batch, bool greedy);

}  // namespace doze::bench

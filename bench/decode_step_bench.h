// Whole forward steps of CudaModelRunner on a random model of Qwen2.5-0.5B's shape (part of
// doze_kernel_bench).
#pragma once

#include <vector>

#include "bench/kernel_bench_util.h"

namespace doze::bench {

// Appends: TTFT of a 512-token prompt, and decode steps at batch 1, 2, 4, 8 and 64 over 512-token contexts
// (batches up to 8 with the fused decode GEMVs and with cuBLASLt alone), each with host logits (Forward) and
// device logits (ForwardOnDevice).
void BenchDecodeSteps(std::vector<Result>& out);

}  // namespace doze::bench

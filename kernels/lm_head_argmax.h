// The LM head and greedy sampling in one pass for decode's few dozen rows: token[r] = argmax_j (x[r] . w[j])
// without writing the logits. Each block keeps every row of x in shared memory and streams its share of the
// vocabulary's weight rows through a ring of stages (cp.async), multiplied on tensor cores (wgmma on sm_90a,
// mma.sync elsewhere), keeping each row's best (value, index) as it goes; a second small kernel picks the
// best of the blocks'. The logits are the same fp32 sums a GEMM computes, in another order: where two logits
// are within rounding of each other the choice may differ from an argmax over cuBLASLt's logits.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace doze::kernels {

// Whether LmHeadArgmax takes m rows over a k-wide hidden state: 1 <= m <= 64, k a multiple of 64, and x's
// rows small enough to stay in shared memory beside the weight stages.
bool LmHeadArgmaxSupports(int m, int n, int k);

// Whether, where LmHeadArgmaxSupports, it is the faster way to m rows' greedy tokens than the logits and an
// argmax over them (kernels/PERF_NOTES.md); DOZE_LM_HEAD_ARGMAX_MIN_ROWS sets the fewest rows that take it
// (measurements; 65: never).
bool LmHeadArgmaxPreferred(int m, int n, int k);

// Bytes of workspace LmHeadArgmax needs for m rows (each block's best per row).
size_t LmHeadArgmaxWorkspaceBytes(int m);

// tokens[r] = the lowest j of the largest x[r] . w[j] (fp32 sums) for r < m. Launched with programmatic
// dependent launch: the first weight tiles load before the wait on the kernel that writes x.
void LmHeadArgmax(const __nv_bfloat16* x,  // [m, k]
                  const __nv_bfloat16* w,  // [n, k]
                  int32_t* tokens,         // [m]
                  int m, int n, int k,
                  void* workspace,  // [LmHeadArgmaxWorkspaceBytes(m)]
                  cudaStream_t stream);

}  // namespace doze::kernels

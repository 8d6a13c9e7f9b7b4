// A hand-written bf16 matrix-vector product for decode's few rows: y = x @ w^T (+ bias), fp32 accumulation.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/gemm.h"

namespace doze::kernels {

// Most rows of x one Gemv call takes.
inline constexpr int kGemvMaxRows = 8;

// y[m, n] = x[m, k] @ w[n, k]^T (+ bias[n]) for 1 <= m <= kGemvMaxRows; k must be a multiple of 8.
// Each warp streams one weight row once with 16-byte loads and applies it to all m rows of x. Launched with
// programmatic dependent launch (kernels/pdl.cuh): the first weights load before the wait on the kernel that
// writes x.
void Gemv(const __nv_bfloat16* x,     // [m, k]
          const __nv_bfloat16* w,     // [n, k]
          const __nv_bfloat16* bias,  // [n] or nullptr
          void* y,                    // [m, n], bf16 or fp32 as `out_type` says
          OutType out_type, int m, int n, int k, cudaStream_t stream);

}  // namespace doze::kernels

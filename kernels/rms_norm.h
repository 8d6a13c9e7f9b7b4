// RMSNorm in fp32 (Qwen2RMSNorm), alone and fused with the residual add that precedes it.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace doze::kernels {

// Threads of AddRmsNorm's block (one block a row); kernels that end in the same norm take its vectors the
// same way (kernels/rms_norm.cuh).
inline constexpr int kAddRmsNormThreads = 128;

// The longest row the norms take: each thread holds up to eight of its eight-value vectors in registers.
inline constexpr int kMaxNormHidden = kAddRmsNormThreads * 8 * 8;

// The vectors a norm thread holds for rows of `hidden` (1, 2, 4 or 8; hidden <= kMaxNormHidden).
inline int NormVecs(int hidden) {
  const int vecs = (hidden + kAddRmsNormThreads * 8 - 1) / (kAddRmsNormThreads * 8);
  return vecs <= 1 ? 1 : vecs <= 2 ? 2 : vecs <= 4 ? 4 : 8;
}

// Ends the process (CudaFail, naming `op`) unless `hidden` is a multiple of 8 of at most kMaxNormHidden.
void CheckNormHidden(const char* op, int hidden);

// out = x / sqrt(mean(x^2) + eps) * weight, row by row. `hidden` must be a multiple of 8, at most
// kMaxNormHidden.
void RmsNorm(const __nv_bfloat16* x,       // [num_rows, hidden]
             const __nv_bfloat16* weight,  // [hidden]
             __nv_bfloat16* out,           // [num_rows, hidden]
             int num_rows, int hidden, float eps, cudaStream_t stream);

// residual += x (rounded to bf16, as the model's residual stream is), then out = RmsNorm(residual) * weight.
void AddRmsNorm(__nv_bfloat16* residual,      // [num_rows, hidden], updated in place
                const __nv_bfloat16* x,       // [num_rows, hidden]
                const __nv_bfloat16* weight,  // [hidden]
                __nv_bfloat16* out,           // [num_rows, hidden]
                int num_rows, int hidden, float eps, cudaStream_t stream);

}  // namespace doze::kernels

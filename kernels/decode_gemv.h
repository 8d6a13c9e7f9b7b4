// Fused matrix-vector products for decode steps of a few rows (1 <= m <= kGemvMaxRows): each weight row is
// streamed once for all m rows of x, and the small element-wise ops around a linear layer run in its
// prologue (RMSNorm of the residual stream) or epilogue (residual add, SwiGLU, rotary + KV-cache write), so a
// decoder layer takes four of these and the attention instead of ten kernels. All launch with programmatic
// dependent launch (kernels/pdl.cuh): the weights of the next layer start loading while the previous kernel
// finishes. Weights, biases, norm weights, positions, slot mappings and inv_freq are read before the wait, so
// the kernel just before must not write them; x and the residual stream are read after it. Roundings are
// those of the unfused ops (bf16 after each op the model rounds), so both paths compute the same values.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/gemv.h"
#include "kernels/rotary_kv_cache.h"

namespace doze::kernels {

// The RMSNorm applied to the residual stream before a projection: x = residual / rms(residual) * weight.
struct NormInput {
  const __nv_bfloat16* residual;  // [m, hidden]
  const __nv_bfloat16* weight;    // [hidden]
  float eps;
  // [m, hidden]: fixed-point sums still to be added to the residual (kernels/pending_residual.cuh), or
  // nullptr. The stream in memory is not updated: the kernel normalizes bf16(residual + bf16(sum)).
  const int64_t* pending = nullptr;
};

// qkv = RmsNorm(residual) @ w^T + bias, then RotaryAndCacheWrite's rotation and K/V cache writes.
// shape.num_tokens is m; hidden must be a multiple of 8.
void NormQkvRotaryGemv(const NormInput& in,
                       const __nv_bfloat16* w,     // [(num_q_heads + 2 * num_kv_heads) * head_dim, hidden]
                       const __nv_bfloat16* bias,  // [(num_q_heads + 2 * num_kv_heads) * head_dim] or nullptr
                       const RotaryCacheOutput& out, const RotaryShape& shape, int hidden,
                       cudaStream_t stream);

// act = silu(g) * u with [g, u] = RmsNorm(residual) @ w^T, g and u rounded to bf16 first (as SiluMul reads
// them).
void NormSwiGluGemv(const NormInput& in,
                    const __nv_bfloat16* w,  // [2 * intermediate, hidden]: gate rows, then up rows
                    __nv_bfloat16* act,      // [m, intermediate]
                    int m, int intermediate, int hidden, cudaStream_t stream);

// residual += bf16(x @ w^T), rounded to bf16 (AddRmsNorm's residual update, moved into the projection).
void ResidualGemv(const __nv_bfloat16* x,   // [m, k]
                  const __nv_bfloat16* w,   // [n, k]
                  __nv_bfloat16* residual,  // [m, n], updated in place
                  int m, int n, int k, cudaStream_t stream);

}  // namespace doze::kernels

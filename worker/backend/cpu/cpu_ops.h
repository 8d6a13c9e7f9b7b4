// The element-wise and row-wise ops of the Qwen2 forward pass, in fp32 as Hugging Face transformers computes
// them.
#pragma once

#include <cstdint>

#include "worker/model/tensor.h"

namespace doze {

// out[r] = w * (x[r] * rsqrt(mean(x[r]^2) + eps)), the mean taken in double and the rest in fp32
// (Qwen2RMSNorm).
void RmsNorm(const float* x,  // [num_rows, dim]
             const float* w,  // [dim]
             int64_t num_rows, int64_t dim, float eps,
             float* out);  // [num_rows, dim]; may alias x

// cos and sin of position * inv_freq[i] with inv_freq[i] = 1 / theta^(2i / head_dim), both rounded to fp32 at
// the same steps as transformers' default rotary embedding, so that long positions land on the same angles.
void RopeCosSin(const int32_t* positions,  // [num_tokens]
                int64_t num_tokens, int head_dim, double theta,
                float* cos,   // [num_tokens, head_dim / 2]
                float* sin);  // [num_tokens, head_dim / 2]

// Rotates every head of every token in place, rotate-half convention: x' = x * cos + rotate_half(x) * sin.
void ApplyRope(float* x,  // [num_tokens, row_stride], heads at [h * head_dim, (h + 1) * head_dim)
               int64_t num_tokens, int64_t row_stride, int num_heads, int head_dim,
               const float* cos,   // [num_tokens, head_dim / 2]
               const float* sin);  // [num_tokens, head_dim / 2]

// out[i] = silu(gate[i]) * up[i] with silu(g) = g / (1 + exp(-g)).
void SiluMul(const float* gate,  // [n]
             const float* up,    // [n]
             int64_t n,
             float* out);  // [n]; may alias gate or up

// x[i] += y[i]: the residual connections.
void AddInPlace(float* x,        // [n]
                const float* y,  // [n]
                int64_t n);

// out[t] = table[ids[t]] widened to fp32. ids must be < the table's row count.
void GatherRows(const TensorView& table,  // [num_rows, dim]
                const int32_t* ids,       // [num_ids]
                int64_t num_ids,
                float* out);  // [num_ids, dim]

// Widens a 1-D checkpoint tensor (a norm weight or a bias) to fp32.
void WidenToFloat(const TensorView& tensor, float* out);  // out: [tensor.num_elements()]

}  // namespace doze

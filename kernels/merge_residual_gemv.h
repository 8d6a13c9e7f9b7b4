// The output projection of one decode row, merging the split attention's partial softmaxes itself
// (PagedAttentionUnmerged), so that no combine kernel runs between the attention and o_proj. The merged row
// and the residual update are bit for bit those of PagedAttention followed by ResidualGemv.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/attention_partials.h"

namespace doze::kernels {

// The longest attention row (num_q_heads * head_dim) MergeResidualGemv takes.
constexpr int kMergeGemvMaxK = 1024;

// Whether MergeResidualGemv takes m rows of k = num_q_heads * head_dim values: one row, k a multiple of 8 and
// at most kMergeGemvMaxK.
bool MergeResidualGemvTakes(int m, int k);

// residual += bf16(merge(x) @ w^T), rounded to bf16 as ResidualGemv rounds it. Launched with programmatic
// dependent launch: w and x.context_lens are read before the wait, the partials and the residual after it.
// With `pending` (fixed-point sums an earlier kernel left for the residual stream,
// kernels/pending_residual.cuh) the residual is first bf16(residual + bf16(sum)), and the sums are zeroed
// once taken.
void MergeResidualGemv(const AttentionPartials& x,
                       const __nv_bfloat16* w,   // [n, num_q_heads * head_dim]
                       __nv_bfloat16* residual,  // [1, n], updated in place
                       int64_t* pending,         // [1, n] or nullptr
                       int n, cudaStream_t stream);

}  // namespace doze::kernels

// The two passes of a row's RMSNorm by one block, shared by the norm kernels and the projections that end
// in one: of the block's first `threads` threads, thread t takes the row's eight-value vectors t, t +
// threads, ... in both passes (the others only join the block sum), so the sum of squares (and so the result)
// does not depend on which kernel runs it.
#pragma once

#include <cuda_bf16.h>

#include "kernels/vec.cuh"

namespace doze::kernels {

// 1 / sqrt(mean(v^2) + eps) over the row whose vectors load(i, v) gives (i the vector's first element;
// load may also write the values back, as a residual add does). `scratch` holds one float per warp.
template <typename LoadVector>
__device__ __forceinline__ float RowInvRms(LoadVector&& load, int hidden, int threads, float eps,
                                           float* scratch) {
  float sum_sq = 0.f;
  for (int i = threadIdx.x * 8; threadIdx.x < threads && i < hidden; i += threads * 8) {
    float v[8];
    load(i, v);
#pragma unroll
    for (int j = 0; j < 8; ++j) sum_sq += v[j] * v[j];
  }
  return rsqrtf(BlockSum(sum_sq, scratch) / hidden + eps);
}

// out = row * inv_rms * weight, rounded to bf16; each thread reads back only the vectors it loaded in
// RowInvRms.
__device__ __forceinline__ void WriteNormedRow(const __nv_bfloat16* row,     // [hidden]
                                               const __nv_bfloat16* weight,  // [hidden]
                                               __nv_bfloat16* out,           // [hidden]
                                               int hidden, int threads, float inv_rms) {
  for (int i = threadIdx.x * 8; threadIdx.x < threads && i < hidden; i += threads * 8) {
    float v[8], w[8];
    LoadBf16x8(row + i, v);
    LoadBf16x8(weight + i, w);
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = v[j] * inv_rms * w[j];
    StoreBf16x8(out + i, v);
  }
}

}  // namespace doze::kernels

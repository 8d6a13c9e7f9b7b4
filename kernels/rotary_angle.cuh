// The cos and sin of one rotary pair as every rotary path computes them: the angle position * inv_freq in
// fp32, then cosf and sinf, each rounded to bf16 (transformers' bf16 cos/sin). One definition, so that the
// step's table (RotaryTable), the fused QKV epilogues, RotaryAndCacheWrite and the attention's own rotary
// agree bit for bit.
#pragma once

#include <cuda_bf16.h>

namespace doze::kernels {

__device__ __forceinline__ float2 RotaryPairCosSin(float position, float inv_freq) {
  const float angle = position * inv_freq;
  return {__bfloat162float(__float2bfloat16(cosf(angle))), __bfloat162float(__float2bfloat16(sinf(angle)))};
}

// One row of the step's rotary table: the cos and sin of every pair at `position`, the block's threads
// striding over the pairs.
__device__ __forceinline__ void WriteRotaryRow(float position, const float* inv_freq, float2* row, int half) {
  for (int i = threadIdx.x; i < half; i += blockDim.x) row[i] = RotaryPairCosSin(position, inv_freq[i]);
}

}  // namespace doze::kernels

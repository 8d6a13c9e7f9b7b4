// One row of a table copied by a block: the embedding lookup's copy, shared by GatherRows and the step-input
// kernel that gathers the rows itself (kernels/step_inputs.cu).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/vec.cuh"

namespace doze::kernels {

// dst[:] = table[index, :] over `width` values (a multiple of 8), the block's threads taking every
// blockDim.x-th 16-byte vector; a negative index writes zeros (a padding row).
__device__ __forceinline__ void CopyTableRow(const __nv_bfloat16* table, int64_t index, __nv_bfloat16* dst,
                                             int width) {
  Bf16x8* out = reinterpret_cast<Bf16x8*>(dst);
  const int num_vecs = width / 8;
  if (index < 0) {
    for (int v = threadIdx.x; v < num_vecs; v += blockDim.x) StoreVec(out + v, Bf16x8{});
    return;
  }
  const Bf16x8* src = reinterpret_cast<const Bf16x8*>(table + index * width);
  for (int v = threadIdx.x; v < num_vecs; v += blockDim.x) StoreVec(out + v, LoadVec(src + v));
}

}  // namespace doze::kernels

// (value, index) maxima with the lowest index on ties (torch.argmax's choice), shared by the sampling kernels
// and the projections that end in a greedy choice.
#pragma once

#include <cuda_runtime.h>

#include <cmath>

namespace doze::kernels {

struct Best {
  float value;
  int index;
};

// The empty maximum: loses to every (value, index) but NaN.
__device__ __forceinline__ Best NoBest() { return Best{-INFINITY, 0x7fffffff}; }

// The token of a row's best: a NaN value never wins, so a row whose values are all NaN ends with NoBest's
// index; it gets token 0, which torch.argmax takes for such a row (where only some are NaN torch would take
// the first NaN: a broken model's output either way, and a token inside the vocabulary).
__device__ __forceinline__ int TokenOf(const Best& best) {
  return best.index == NoBest().index ? 0 : best.index;
}

__device__ __forceinline__ Best Better(Best a, Best b) {
  if (b.value > a.value || (b.value == a.value && b.index < a.index)) return b;
  return a;
}

// The best of the warp's lanes' (value, index), in every lane.
__device__ __forceinline__ Best WarpArgmax(Best best) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const Best other{__shfl_xor_sync(0xffffffffu, best.value, offset),
                     __shfl_xor_sync(0xffffffffu, best.index, offset)};
    best = Better(best, other);
  }
  return best;
}

// Block-wide argmax of (value, index) pairs; every thread gets the result.
inline __device__ Best BlockArgmax(Best best) {
  __shared__ float values[32];
  __shared__ int indices[32];
  best = WarpArgmax(best);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) {
    values[threadIdx.x >> 5] = best.value;
    indices[threadIdx.x >> 5] = best.index;
  }
  __syncthreads();
  Best total = NoBest();
  for (int w = 0; w < (blockDim.x >> 5); ++w) total = Better(total, Best{values[w], indices[w]});
  return total;
}

}  // namespace doze::kernels

// (value, index) maxima with the lowest index on ties and a NaN above every number (torch.argmax's choice:
// the first NaN, if any), shared by the sampling kernels and the projections that end in a greedy choice.
#pragma once

#include <cuda_runtime.h>

#include <cmath>

namespace doze::kernels {

struct Best {
  float value;
  int index;
};

// The empty maximum: loses to every (value, index).
__device__ __forceinline__ Best NoBest() { return Best{-INFINITY, 0x7fffffff}; }

__device__ __forceinline__ Best Better(Best a, Best b) {
  const bool a_nan = isnan(a.value), b_nan = isnan(b.value);
  if (a_nan != b_nan) return b_nan ? b : a;
  if (b.value > a.value || ((b.value == a.value || a_nan) && b.index < a.index)) return b;
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

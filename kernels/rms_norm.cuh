// A row's RMSNorm by one block that holds the row in registers between its two passes, shared by the norm
// kernels and the projections that end in one: of the block's first `threads` threads, thread t holds the
// row's eight-value vectors t, t + threads, ... (at most kVecs of them), so the sum of squares (and so the
// result) does not depend on which kernel runs it.
#pragma once

#include <cuda_bf16.h>

#include <type_traits>

#include "kernels/rms_norm.h"
#include "kernels/vec.cuh"

namespace doze::kernels {

// Calls f(std::integral_constant<int, NormVecs(hidden)>{}): picks the instance of a kernel templated on the
// vectors a thread holds (1, 2, 4 or 8) for rows of `hidden`.
template <typename F>
void WithNormVecs(int hidden, F&& f) {
  switch (NormVecs(hidden)) {
    case 1:
      return f(std::integral_constant<int, 1>{});
    case 2:
      return f(std::integral_constant<int, 2>{});
    case 4:
      return f(std::integral_constant<int, 4>{});
    default:
      return f(std::integral_constant<int, 8>{});
  }
}

// A thread's vectors of the row (v) and of the norm weight (w).
template <int kVecs>
struct HeldRow {
  float v[kVecs][8];
  float w[kVecs][8];
};

// Calls f(j, i) for each vector j the thread holds, i its first element.
template <int kVecs, typename F>
__device__ __forceinline__ void ForEachHeldVector(int hidden, int threads, F&& f) {
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int i = (threadIdx.x + j * threads) * 8;
    if (threadIdx.x < threads && i < hidden) f(j, i);
  }
}

// The thread's vectors of `row` and of `weight` into registers.
template <int kVecs>
__device__ __forceinline__ void LoadHeldRow(HeldRow<kVecs>& held, const __nv_bfloat16* row,
                                            const __nv_bfloat16* weight, int hidden, int threads) {
  ForEachHeldVector<kVecs>(hidden, threads, [&](int j, int i) {
    LoadBf16x8(row + i, held.v[j]);
    LoadBf16x8(weight + i, held.w[j]);
  });
}

// 1 / sqrt(mean(v^2) + eps) over the held row; `scratch` holds one float per warp, and every thread of the
// block takes part (those that hold nothing add zeros).
template <int kVecs>
__device__ __forceinline__ float HeldRowInvRms(const HeldRow<kVecs>& held, int hidden, int threads, float eps,
                                               float* scratch) {
  float sum_sq = 0.f;
  ForEachHeldVector<kVecs>(hidden, threads, [&](int j, int) {
#pragma unroll
    for (int q = 0; q < 8; ++q) sum_sq += held.v[j][q] * held.v[j][q];
  });
  return rsqrtf(BlockSum(sum_sq, scratch) / hidden + eps);
}

// out = v * inv_rms * w, rounded to bf16.
template <int kVecs>
__device__ __forceinline__ void WriteHeldRow(HeldRow<kVecs>& held, __nv_bfloat16* out, int hidden,
                                             int threads, float inv_rms) {
  ForEachHeldVector<kVecs>(hidden, threads, [&](int j, int i) {
#pragma unroll
    for (int q = 0; q < 8; ++q) held.v[j][q] = held.v[j][q] * inv_rms * held.w[j][q];
    StoreBf16x8(out + i, held.v[j]);
  });
}

}  // namespace doze::kernels

// RMSNorm of rows already staged in shared memory, for the decode kernels that take the residual stream as
// their input (kernels/decode_gemv.cu, kernels/ffn_gemv.cu): one rounding and one summation order, so that
// they all normalize a row to the same bits, which are RmsNorm's.
#pragma once

#include <cuda_bf16.h>

#include "kernels/env_knob.h"
#include "kernels/vec.cuh"

namespace doze::kernels {

// Each block starts its copy of a row every block reads (x, the residual, its pending sums) kStageRotation
// 16-byte vectors (four L2 lines) after the previous block's, so that the blocks do not all ask the L2 for
// the same line at once: H100 batch 1 -7 to -9 us a step for the GEMVs' x, -1 to -2 more for QKV's pending
// sums and FfnGemv's residual (kernels/PERF_NOTES.md). DOZE_GEMV_STAGE_ROTATION=0 starts them all at the
// first (measurements).
constexpr int kStageRotation = 32;
inline int StageRotation() {
  static const int rotation = EnvFlag("DOZE_GEMV_STAGE_ROTATION") ? kStageRotation : 0;
  return rotation;
}

// Element i of a block's staging loop over `total` elements, starting at `first` and wrapping around.
__device__ __forceinline__ int RotatedIndex(int i, int first, int total) {
  return i + first < total ? i + first : i + first - total;
}

// Where block blockIdx.x starts a staging loop of `total` elements, `rotation` elements a block apart.
__device__ __forceinline__ int RotationStart(int rotation, int total) {
  return static_cast<int>((static_cast<int64_t>(blockIdx.x) * rotation) % total);
}

// Copies the norm weight (a constant) into shared memory: [k / 8] at `dst`.
template <int kThreads>
__device__ __forceinline__ void StageNormWeight(const __nv_bfloat16* weight, int k, Bf16x8* dst) {
  const Bf16x8* src = reinterpret_cast<const Bf16x8*>(weight);
  for (int v = threadIdx.x; v < k / 8; v += kThreads) StoreVec(dst + v, LoadVec(src + v));
}

// Replaces the m rows of `xs` ([m, k / 8], written by this block before the call) by RmsNorm(x) * weight
// rounded to bf16, the weight at `weight` ([k / 8], StageNormWeight). Each warp adds up its vectors' squares,
// the warps' sums are added in warp order. Starts with a barrier; the caller ends with one before reading.
template <int kWarps, int kRows>
__device__ void NormalizeStagedRows(Bf16x8* xs, const Bf16x8* weight, int m, int k, float eps,
                                    float (&scratch)[kWarps][kRows]) {
  constexpr int kThreads = kWarps * 32;
  const int num_vecs = k / 8;
  __syncthreads();
  float sum_sq[kRows] = {};
  for (int v = threadIdx.x; v < num_vecs; v += kThreads) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      if (r >= m) break;
      float f[8];
      Bf16x8ToFloat(LoadVec(xs + r * num_vecs + v), f);
#pragma unroll
      for (int j = 0; j < 8; ++j) sum_sq[r] += f[j] * f[j];
    }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    sum_sq[r] = WarpSum(sum_sq[r]);
    if (lane == 0) scratch[warp][r] = sum_sq[r];
  }
  __syncthreads();
  float inv_rms[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    float total = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) total += scratch[w][r];
    inv_rms[r] = rsqrtf(total / k + eps);
  }
  for (int v = threadIdx.x; v < num_vecs; v += kThreads) {
    float nw[8];
    Bf16x8ToFloat(LoadVec(weight + v), nw);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      if (r >= m) break;
      float f[8];
      Bf16x8ToFloat(LoadVec(xs + r * num_vecs + v), f);
#pragma unroll
      for (int j = 0; j < 8; ++j) f[j] = f[j] * inv_rms[r] * nw[j];
      StoreBf16x8(reinterpret_cast<__nv_bfloat16*>(xs + r * num_vecs + v), f);
    }
  }
}

}  // namespace doze::kernels

// Device side of kernels/pending_residual.h: adding to a pending sum, and adding one to the residual stream.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/decode_epilogue.cuh"
#include "kernels/pending_residual.h"
#include "kernels/vec.cuh"

namespace doze::kernels {

// Adds v to the pending sum at `sum`.
__device__ __forceinline__ void AddPending(int64_t* sum, float v) {
  atomicAdd(reinterpret_cast<unsigned long long*>(sum),
            static_cast<unsigned long long>(__float2ll_rn(v * kPendingScale)));
}

// The pending sum as a float (rounded to nearest).
__device__ __forceinline__ float PendingValue(int64_t sum) {
  return __ll2float_rn(static_cast<long long>(sum)) * (1.f / kPendingScale);
}

// The residual value with its pending sum added, rounded as ResidualGemv rounds its update.
__device__ __forceinline__ float WithPending(float residual, int64_t sum) {
  return RoundBf16(residual + RoundBf16(PendingValue(sum)));
}

// Eight consecutive pending sums, loaded as four 16-byte pieces.
struct PendingX8 {
  longlong2 pair[4];
};

__device__ __forceinline__ PendingX8 LoadPending8(const int64_t* sums) {
  PendingX8 out;
  const longlong2* src = reinterpret_cast<const longlong2*>(sums);
#pragma unroll
  for (int i = 0; i < 4; ++i) out.pair[i] = src[i];
  return out;
}

// WithPending of eight consecutive values.
__device__ __forceinline__ Bf16x8 WithPending(const Bf16x8& x, const PendingX8& sums) {
  float f[8];
  Bf16x8ToFloat(x, f);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = WithPending(f[2 * i], sums.pair[i].x);
    f[2 * i + 1] = WithPending(f[2 * i + 1], sums.pair[i].y);
  }
  Bf16x8 out;
#pragma unroll
  for (int i = 0; i < 4; ++i) out.h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
  return out;
}

}  // namespace doze::kernels

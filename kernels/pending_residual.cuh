// Device side of kernels/pending_residual.h: adding to a pending sum, and adding one to the residual stream.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/decode_epilogue.cuh"
#include "kernels/pending_residual.h"

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

}  // namespace doze::kernels

// y = x W^T + b with W a checkpoint weight in bf16, fp16 or fp32, widened to fp32 as it streams through the
// core.
#pragma once

#include <cstdint>

#include "worker/backend/cpu/thread_pool.h"
#include "worker/model/tensor.h"

namespace doze {

// A row-major [rows, cols] weight matrix left where the checkpoint mapped it.
struct WeightMatrix {
  DType dtype = DType::kF32;
  const void* data = nullptr;  // [rows, cols] of dtype
  int64_t rows = 0;
  int64_t cols = 0;
};

// Views `tensor` (a 2-D [out_features, in_features] linear weight) as a WeightMatrix.
WeightMatrix AsWeightMatrix(const TensorView& tensor);

// y[m, n] = x[m, k] . w[n, k]^T (+ bias[n] when bias is not null), sums kept in fp32.
// Each weight row is read from memory once per call whatever m is: rows are split across the pool's threads
// in chunks, and each chunk meets every token row while it is still in cache. Decode (m = 1) is bound by
// memory bandwidth: the inner loop widens eight weights per load and streams them through two FMA chains.
// A row's result is the same bits whatever m is and whichever rows come with it.
void Matmul(const float* x,  // [m, k]
            int64_t m, const WeightMatrix& w,
            const float* bias,  // [n] or null
            float* y,           // [m, n]
            ThreadPool* pool);

}  // namespace doze

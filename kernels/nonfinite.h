// Counting the NaN and infinite values of a bf16 array: the weights' check at upload.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace doze::kernels {

// *count += the number of elements of x that are NaN or infinite. Any alignment and any n >= 0.
void CountNonFinite(const __nv_bfloat16* x,     // [n]
                    int64_t n,                  //
                    unsigned long long* count,  // [1], device memory
                    cudaStream_t stream);

}  // namespace doze::kernels

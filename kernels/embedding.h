// Row gather: the token-embedding lookup, and picking the rows whose logits are wanted.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace doze::kernels {

// out[i, :] = table[indices[i], :] for i < num_rows; a negative index writes a zero row (padding).
// `width` must be a multiple of 8 (16-byte vectors).
void GatherRows(const int32_t* indices,      // [num_rows]
                const __nv_bfloat16* table,  // [table_rows, width]
                __nv_bfloat16* out,          // [num_rows, width]
                int num_rows, int width, cudaStream_t stream);

}  // namespace doze::kernels

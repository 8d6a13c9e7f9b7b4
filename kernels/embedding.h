// Row gather: the token-embedding lookup, and picking the rows whose logits are wanted; and the token ids a
// step takes from the tokens the previous step sampled on the device.
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

// token_ids[i] = samples[sources[i]] where sources[i] >= 0; other rows keep their id. For a step scheduled
// before the previous step's tokens reached the host.
void TakeSampledTokens(int32_t* token_ids,      // [num_rows]
                       const int32_t* sources,  // [num_rows]: a row of samples, or -1
                       const int32_t* samples,  // [previous step's sampled rows]
                       int num_rows, cudaStream_t stream);

}  // namespace doze::kernels

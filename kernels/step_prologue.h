// The first kernel of a decode step on the tensor-core path: the embedding gather, the first layer's input
// norm and the step's rotary table (the cos and sin of each row's position) in one launch instead of three
// (each launch costs the step a kernel boundary, ~2-3 us on the H100: kernels/PERF_NOTES.md, fifteenth
// session).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace doze::kernels {

struct StepPrologueArgs {
  const int32_t* token_ids;          // [num_rows]; a negative id is a padding row (zeros)
  const __nv_bfloat16* embedding;    // [vocab, hidden]
  const __nv_bfloat16* norm_weight;  // [hidden]: the first layer's input norm
  __nv_bfloat16* residual;           // [num_rows, hidden]
  __nv_bfloat16* normed;             // [num_rows, hidden]
  float eps;
  const int32_t* positions;  // [num_rows]; with cos_sin
  const float* inv_freq;     // [head_dim / 2]; with cos_sin
  float2* cos_sin;           // [num_rows, head_dim / 2], or nullptr: no table
  int num_rows, hidden, head_dim;
};

// GatherRows(token_ids, embedding, residual), RmsNorm(residual, norm_weight, normed) and, with cos_sin,
// RotaryTable(positions, inv_freq, cos_sin): the same values, bit for bit. hidden a multiple of 8 of at most
// kMaxNormHidden (kernels/rms_norm.h). It reads token_ids and positions after its grid dependency wait.
void StepPrologue(const StepPrologueArgs& args, cudaStream_t stream);

}  // namespace doze::kernels

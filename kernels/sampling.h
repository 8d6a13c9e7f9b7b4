// Next-token choice on the GPU, so logits need not travel to the host: greedy argmax, and temperature
// sampling restricted by top-k, top-p and min-p with a per-row seed (reproducible: same seed, same logits,
// same token).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/sample_uniform.h"

namespace doze::kernels {

// out[r] = the index of the largest logit of row r (the lowest index among equal maxima).
void ArgmaxRows(const float* logits,  // [num_rows, vocab]
                int32_t* out,         // [num_rows]
                int num_rows, int vocab, cudaStream_t stream);

// Per-row sampling settings, in device memory.
struct SamplingParams {
  const float* temperature;  // [num_rows]; <= 0 picks the argmax
  const int32_t* top_k;      // [num_rows]; <= 0 or >= vocab: off
  const float* top_p;        // [num_rows]; >= 1: off
  const float* min_p;        // [num_rows]; <= 0: off
  const uint64_t* seed;      // [num_rows]; the caller varies it per step
};

// Samples one token per row from softmax(logits / temperature) restricted to the tokens that survive top-k,
// then top-p (over the top-k mass), then min-p (p >= min_p * p_max). Ties at a cut-off are all kept. The draw
// is a Gumbel-max over SampleUniform(seed, token) (kernels/sample_uniform.h), so a CPU reference can replay
// it.
void SampleRows(const float* logits,  // [num_rows, vocab]
                const SamplingParams& params,
                int32_t* out,  // [num_rows]
                int num_rows, int vocab, cudaStream_t stream);

}  // namespace doze::kernels

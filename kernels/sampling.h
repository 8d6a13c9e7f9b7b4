// Next-token choice on the GPU, so logits need not travel to the host: greedy argmax, and temperature
// sampling restricted by top-k, top-p and min-p, drawn with the host Sampler's rules
// (worker/engine/sampler.h) and its random number (kernels/sample_uniform.h), so a seeded sequence gets the
// same tokens either way.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/sample_uniform.h"

namespace doze::kernels {

// One change to one logit before sampling, in the host Sampler's order (worker/engine/sampler.h): add `bias`,
// then the repetition penalty (v > 0 ? v / repetition : v * repetition; 1 leaves v), then subtract `subtract`
// (the presence and frequency penalties).
struct LogitEdit {
  int32_t row;       // logits row
  int32_t token_id;  // at most one edit per (row, token_id)
  float bias;
  float repetition;
  float subtract;
};

// Applies `num_edits` edits to `logits` in place, one thread each, with the host's float operations, so the
// edited logits equal the host Sampler's bit for bit.
void ApplyLogitEdits(float* logits,           // [rows, vocab]
                     const LogitEdit* edits,  // [num_edits], device memory
                     int num_edits, int vocab, cudaStream_t stream);

// Bytes of scratch ArgmaxRows and SampleRows need for `num_rows` rows (each row's argmax is found in 64
// slices first, on as many multiprocessors, then merged).
size_t SamplingWorkspaceBytes(int num_rows);

// out[r] = the index of the largest logit of row r (the lowest index among equal maxima).
void ArgmaxRows(const float* logits,  // [num_rows, vocab]
                int32_t* out,         // [num_rows]
                void* workspace,      // [SamplingWorkspaceBytes(num_rows)]
                int num_rows, int vocab, cudaStream_t stream);

// Whether a row with these settings samples through top-k, top-p or min-p (else, at a positive temperature,
// with its temperature alone). Host and device code.
inline __host__ __device__ bool UsesSamplingFilters(int top_k, float top_p, float min_p, int vocab) {
  return (top_k > 0 && top_k < vocab) || top_p < 1.f || min_p > 0.f;
}

// Per-row sampling settings, in device memory.
struct SamplingParams {
  const float* temperature;  // [num_rows]; <= 0 picks the argmax
  const int32_t* top_k;      // [num_rows]; <= 0 or >= vocab: off
  const float* top_p;        // [num_rows]; >= 1: off
  const float* min_p;        // [num_rows]; <= 0: off
  const uint64_t* seed;      // [num_rows]; the sequence's seed
  const uint64_t* step;      // [num_rows]; its output index
  // Host hint: whether any row samples with its temperature alone (no top-k, top-p or min-p); such rows then
  // sum their weights over 64 slices of the row on as many multiprocessors first. False skips that pass
  // (such rows would be drawn in one block, slower).
  bool any_temperature_alone = true;
  // Host hint: whether any row samples through top-k, top-p or min-p; such rows then bound and gather their
  // candidates over 64 slices of the row first. False skips those passes (one block a row would do them).
  bool any_filtered = true;
};

// Samples one token per row as the host Sampler does for a row without penalties: the logits are divided by
// the temperature; top-k keeps the k largest and any tied with the k-th; top-p keeps, in most-likely-first
// order (ties by id), each token whose mass above is below p of the top-k mass; min-p keeps p >= min_p *
// p_max; the draw is the inverse CDF over ids at SeededUniform(seed, step). Sums are in a different order
// than the host's, so a draw within rounding of a boundary may differ. One block per row, about a dozen
// passes over it.
void SampleRows(const float* logits,  // [num_rows, vocab]
                const SamplingParams& params,
                int32_t* out,     // [num_rows]
                void* workspace,  // [SamplingWorkspaceBytes(num_rows)]
                int num_rows, int vocab, cudaStream_t stream);

}  // namespace doze::kernels

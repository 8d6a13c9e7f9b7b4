// Picks a step's tokens where the logits are: uploads each row's DeviceSamplingRow, runs kernels::SampleRows
// on the runner's stream and copies back one int32 per row instead of [rows, vocab] fp32 logits.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/backend/cuda/device_memory.h"
#include "worker/engine/model_runner.h"

namespace doze {

// Not thread-safe: the engine thread calls it, after the forward pass that wrote the logits on `stream`.
class CudaSampler {
 public:
  explicit CudaSampler(cudaStream_t stream) : stream_(stream) {}

  // Token ids of the rows.size() rows of `logits`, ordered after the work already on the stream. Rows' logit
  // edits (penalties, logit bias) are applied to `logits` in place first.
  absl::StatusOr<std::vector<int32_t>> Sample(float* logits,  // [rows.size(), vocab] on the device
                                              absl::Span<const DeviceSamplingRow> rows, int vocab);

 private:
  // Device and pinned views of the per-row arrays, laid out alike in params_ and host_params_.
  struct Arrays {
    float *temperature, *top_p, *min_p;
    int32_t *top_k, *out;
    uint64_t *seed, *step;
    char* workspace;  // kernels::SamplingWorkspaceBytes(rows); unused in the host copy
  };

  absl::Status EnsureCapacity(int num_rows);
  // Uploads every row's edits as one list and applies them to `logits`.
  absl::Status ApplyEdits(float* logits, absl::Span<const DeviceSamplingRow> rows, int vocab);
  // The arrays of `num_rows` rows from `base`; `bytes`, when given, gets the size they span.
  static Arrays Carve(void* base, int num_rows, size_t* bytes = nullptr);

  cudaStream_t stream_;
  int capacity_ = 0;
  cuda::DeviceBuffer params_;       // Arrays of capacity_ rows
  cuda::PinnedBuffer host_params_;  // same layout
  size_t edit_capacity_ = 0;
  cuda::DeviceBuffer edits_;       // [edit_capacity_] kernels::LogitEdit
  cuda::PinnedBuffer host_edits_;  // same
};

}  // namespace doze

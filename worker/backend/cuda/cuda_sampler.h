// Picks a step's tokens where the logits are: uploads each row's DeviceSamplingRow, runs kernels::SampleRows
// on the runner's stream and brings back one int32 per row instead of [rows, vocab] fp32 logits. Up to two
// steps may be enqueued before their tokens are waited for (each has its own pinned staging). The tokens
// reach pinned memory through the next step's input kernel (kernels::StageStepInputs: UnpublishedTokens,
// TokensPublished), or through a copy when Wait finds them still only on the device.
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
  explicit CudaSampler(cudaStream_t stream);
  ~CudaSampler();
  CudaSampler(const CudaSampler&) = delete;
  CudaSampler& operator=(const CudaSampler&) = delete;

  // Token ids of the rows.size() rows of `logits`, ordered after the work already on the stream. Rows' logit
  // edits (penalties, logit bias) are applied to `logits` in place first.
  absl::StatusOr<std::vector<int32_t>> Sample(float* logits,  // [rows.size(), vocab] on the device
                                              absl::Span<const DeviceSamplingRow> rows, int vocab);
  // Sample's work, enqueued without waiting: the tokens land in last_tokens() on the device, then in pinned
  // memory for Wait. FailedPrecondition with two samplings not waited for.
  absl::Status Enqueue(float* logits,  // [rows.size(), vocab] on the device
                       absl::Span<const DeviceSamplingRow> rows, int vocab);
  // Readies the device buffer for steps whose forward pass chooses the tokens itself (greedy rows,
  // kernels/lm_head_argmax.h): ChosenTokens(rows) is then stable while rows <= num_rows.
  absl::Status Reserve(int num_rows);
  // Where such a step writes its `num_rows` tokens on the device (last_tokens()), or nullptr beyond what
  // Reserve readied.
  int32_t* ChosenTokens(int num_rows) const;
  // Enqueue for a step whose first `num_rows` tokens the stream's work wrote to ChosenTokens: Wait's turn
  // for them (the stream's work wrote them over the previous ones, so those must be in pinned memory).
  absl::Status EnqueueChosen(int num_rows);
  // Where the latest sampling's tokens belong in pinned memory while they are only in last_tokens():
  // {nullptr, 0} once they are there (or on their way).
  struct Unpublished {
    int32_t* host = nullptr;  // [rows], pinned memory
    int rows = 0;
  };
  Unpublished UnpublishedTokens() const;
  // The caller enqueued, on the stream, work that copies last_tokens() to UnpublishedTokens().host: Wait
  // returns them once that work is done.
  void TokensPublished();
  // Waits for the oldest enqueued sampling and returns its tokens.
  absl::StatusOr<std::vector<int32_t>> Wait();
  // The latest enqueued sampling's tokens on the device, [its rows], valid for work enqueued before the next
  // Enqueue's sampling.
  const int32_t* last_tokens() const;

 private:
  // Device and pinned views of the per-row arrays, laid out alike in params_ and each slot's params.
  struct Arrays {
    float *temperature, *top_p, *min_p;
    int32_t *top_k, *out;
    uint64_t *seed, *step;
    char* workspace;  // kernels::SamplingWorkspaceBytes(rows); unused in the host copy
  };

  absl::Status EnsureCapacity(int num_rows);
  // Uploads every row's edits as one list and applies them to `logits` (after the other slot's upload, if it
  // is pending: the list's staging is shared).
  absl::Status ApplyEdits(float* logits, absl::Span<const DeviceSamplingRow> rows, int vocab);
  // The arrays of `num_rows` rows from `base`; `bytes`, when given, gets the size they span.
  static Arrays Carve(void* base, int num_rows, size_t* bytes = nullptr);

  // One enqueued sampling's pinned staging: its rows' parameters, then its tokens.
  struct Slot {
    cuda::PinnedBuffer params;   // Arrays of capacity_ rows, as params_
    cudaEvent_t done = nullptr;  // recorded after the sampling, again after the tokens' way to `params`
    int rows = 0;
    bool pending = false;   // enqueued, not waited for
    bool published = true;  // the tokens are in `params` once `done` completes
    // Enqueued, and its tokens still only in last_tokens().
    bool unpublished() const { return pending && !published; }
  };
  // The slot the latest sampling filled.
  Slot& latest() { return slots_[next_slot_ ^ 1]; }
  const Slot& latest() const { return slots_[next_slot_ ^ 1]; }

  // The slot the next sampling fills; FailedPrecondition while it still holds one not waited for.
  absl::StatusOr<Slot*> FreeSlot();
  // The slot's event after the sampling, and its turn; its tokens are still only in last_tokens().
  void FinishSlot(Slot& slot, int num_rows);
  // A copy of last_tokens() into the slot's pinned memory, then its event.
  void CopyTokens(Slot& slot);

  cudaStream_t stream_;
  int capacity_ = 0;
  cuda::DeviceBuffer params_;  // Arrays of capacity_ rows
  Slot slots_[2];
  int next_slot_ = 0;    // the slot the next Enqueue uses
  int oldest_slot_ = 0;  // the slot the next Wait takes
  size_t edit_capacity_ = 0;
  cuda::DeviceBuffer edits_;       // [edit_capacity_] kernels::LogitEdit
  cuda::PinnedBuffer host_edits_;  // same
};

}  // namespace doze

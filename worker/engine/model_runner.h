// The backend interface: runs the model for one step over a paged KV cache it owns.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/engine/batch_metadata.h"
#include "worker/engine/logit_edit.h"
#include "worker/model/model_config.h"

namespace doze {

// Next-token logits of the rows a step asked for: row i belongs to batch.logits_indices[i].
struct LogitsView {
  const float* data = nullptr;  // [num_rows, vocab_size], host memory, valid until the next Forward
  int num_rows = 0;
  int vocab_size = 0;
  const float* row(int i) const { return data + static_cast<size_t>(i) * vocab_size; }
};

// How to pick one row's token on the device: the host Sampler's rules for a row without logprobs or
// top_logits (see DeviceSamplingRowOf in worker/engine/sampler.h).
struct DeviceSamplingRow {
  float temperature = 0.0f;  // 0: greedy, the lowest id of the largest logit
  int32_t top_k = 0;         // <= 0: off
  float top_p = 1.0f;        // >= 1: off
  float min_p = 0.0f;        // <= 0: off
  uint64_t seed = 0;         // the sequence's seed
  uint64_t step = 0;         // its output index: the draw is SeededUniform(seed, step)
  absl::Span<const LogitEdit>
      edits;  // logit bias and penalties, applied to the row first; empty for most rows
};

// Implemented by the CPU reference backend and the CUDA backend. The KV cache is a pool of num_kv_blocks()
// blocks of block_size() token slots per layer; the engine's BlockManager decides which slots each sequence
// uses.
class ModelRunner {
 public:
  virtual ~ModelRunner() = default;

  virtual const ModelConfig& config() const = 0;
  // Tokens per KV block.
  virtual int block_size() const = 0;
  // Blocks in the KV pool.
  virtual int num_kv_blocks() const = 0;
  // Writes K/V of every token of `batch` into its slot, attends causally over each sequence's blocks and
  // returns the logits of the rows in batch.logits_indices.
  virtual absl::StatusOr<LogitsView> Forward(const BatchMetadata& batch) = 0;

  // Whether ForwardAndSample is implemented. Optional: a backend without it only ever sees Forward.
  virtual bool SupportsDeviceSampling() const { return false; }
  // Runs the step like Forward, then picks logits row i's next token where the logits are, per rows[i]
  // (rows.size() == batch.num_logits()), and returns only the token ids. The contract is the host Sampler's
  // result: rows[i].edits are applied first (ApplyLogitEdits), then greedy takes the lowest id of the largest
  // logit; temperature > 0 keeps what MaskTopK, MaskTopP and MaskMinP keep and draws by inverse CDF over ids
  // with SeededUniform(seed, step). Float rounding may differ from the host's, so a draw that lands within
  // rounding of a CDF boundary may pick the neighbouring token.
  virtual absl::StatusOr<std::vector<int32_t>> ForwardAndSample(
      const BatchMetadata& /*batch*/, absl::Span<const DeviceSamplingRow> /*rows*/) {
    return absl::UnimplementedError("this backend samples on the host only");
  }
  // Whether SubmitForwardAndSample and CollectSamples are implemented (then SupportsDeviceSampling is too).
  virtual bool SupportsAsyncSampling() const { return false; }
  // Starts a step like ForwardAndSample and returns without waiting for it; CollectSamples returns its
  // tokens. At most two steps are outstanding (submitted, not collected), collected in submission order. A
  // row r with batch.token_sources[r] >= 0 takes its token from logits row token_sources[r] of the previously
  // submitted step, on the device, so that a step can start before the previous one's tokens reach the host.
  virtual absl::Status SubmitForwardAndSample(const BatchMetadata& /*batch*/,
                                              absl::Span<const DeviceSamplingRow> /*rows*/) {
    return absl::UnimplementedError("this backend does not sample asynchronously");
  }
  // Waits for the oldest outstanding step and returns its token ids, one per logits row.
  virtual absl::StatusOr<std::vector<int32_t>> CollectSamples() {
    return absl::UnimplementedError("this backend does not sample asynchronously");
  }
  // Releases device memory while the worker sleeps: the KV cache is freed (its contents are lost) and the
  // weights may move to host memory. The engine is idle and is rebuilt after Wake, so no cached prefix
  // outlives the sleep. The default keeps everything in place (the CPU backend has nothing to release).
  virtual absl::Status Sleep() { return absl::OkStatus(); }
  // Undoes Sleep: weights and a fresh KV pool of the same number of blocks are back on the device.
  virtual absl::Status Wake() { return absl::OkStatus(); }
};

}  // namespace doze

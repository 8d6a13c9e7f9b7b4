// The backend interface: runs the model for one step over a paged KV cache it owns.
#pragma once

#include "absl/status/statusor.h"
#include "worker/engine/batch_metadata.h"
#include "worker/model/model_config.h"

namespace doze {

// Next-token logits of the rows a step asked for: row i belongs to batch.logits_indices[i].
struct LogitsView {
  const float* data = nullptr;  // [num_rows, vocab_size], host memory, valid until the next Forward
  int num_rows = 0;
  int vocab_size = 0;
  const float* row(int i) const { return data + static_cast<size_t>(i) * vocab_size; }
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
};

}  // namespace doze

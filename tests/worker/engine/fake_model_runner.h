// A ModelRunner that is a tiny model of its own, for engine tests: its KV cache stores token ids, and the
// logits of a row are a function of the whole context it reads back through the block table. A wrong slot, a
// wrong block table or a bad prefix-cache hit changes the context it reads, hence the tokens it predicts.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "worker/engine/model_runner.h"

namespace doze {

class FakeModelRunner : public ModelRunner {
 public:
  FakeModelRunner(int vocab_size, int num_kv_blocks, int block_size = 16, int max_position_embeddings = 4096);

  const ModelConfig& config() const override { return config_; }
  int block_size() const override { return block_size_; }
  int num_kv_blocks() const override { return num_kv_blocks_; }
  // Stores every token in its slot, then reads each logits row's context back through the block table.
  // Internal error when a row reads a slot never written or the arrays disagree.
  absl::StatusOr<LogitsView> Forward(const BatchMetadata& batch) override;

  // The logits this model gives after `context`: a peak at one context-dependent id over context-dependent
  // noise.
  static std::vector<float> LogitsAfter(absl::Span<const int32_t> context, int vocab_size);

  // Token rows run since construction (prefill chunks and decodes).
  int64_t num_computed_tokens() const { return num_computed_tokens_; }
  int num_forward_calls() const { return num_forward_calls_; }
  // The largest num_tokens of one Forward.
  int max_batch_tokens() const { return max_batch_tokens_; }

 private:
  absl::Status CheckShapes(const BatchMetadata& batch) const;
  // The token ids of positions [0, length) of sequence `s`, read from the cache.
  absl::StatusOr<std::vector<int32_t>> ReadContext(const BatchMetadata& batch, int s, int length) const;

  ModelConfig config_;
  int block_size_;
  int num_kv_blocks_;
  std::vector<int32_t> kv_;  // [num_kv_blocks * block_size] token id per slot, -1 never written
  std::vector<float> logits_;
  int64_t num_computed_tokens_ = 0;
  int num_forward_calls_ = 0;
  int max_batch_tokens_ = 0;
};

}  // namespace doze

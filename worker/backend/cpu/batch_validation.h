// Checks a BatchMetadata before a backend indexes memory with it.
#pragma once

#include "absl/status/status.h"
#include "worker/engine/batch_metadata.h"

namespace doze {

// The sizes of what a batch indexes: the vocabulary and the KV pool.
struct BatchLimits {
  int vocab_size = 0;
  int num_kv_blocks = 0;
  int block_size = 0;
};

// Returns InvalidArgument, naming the offending field and index, unless every array has its documented size,
// every sequence's new tokens are the last positions of its context (positions[row] = seq_len - num_new + i),
// every block its context reaches is a valid pool block, each token's slot is the one its block table gives
// for its position, token ids are below the vocabulary size and logits rows are within the batch.
absl::Status ValidateBatch(const BatchMetadata& batch, const BatchLimits& limits);

}  // namespace doze

// Checks a BatchMetadata before a backend indexes memory with it.
#pragma once

#include "absl/status/status.h"
#include "worker/engine/batch_metadata.h"

namespace doze {

// The sizes of what a batch indexes: the vocabulary, the KV pool and the previous step's sampled rows.
struct BatchLimits {
  int vocab_size = 0;
  int num_kv_blocks = 0;
  int block_size = 0;
  // Rows the previously submitted step samples: token_sources must be below it (0: no sources allowed).
  int num_previous_samples = 0;
};

// Returns InvalidArgument, naming the offending field and index, unless every array has its documented size,
// every sequence's new tokens are the last positions of its context (positions[row] = seq_len - num_new + i),
// every block its context reaches is a valid pool block, each token's slot is the one its block table gives
// for its position, token ids are below the vocabulary size (or, for a row with a token source, the source is
// one of the previous step's sampled rows) and logits rows are within the batch.
absl::Status ValidateBatch(const BatchMetadata& batch, const BatchLimits& limits);

}  // namespace doze

#include "worker/backend/cpu/batch_validation.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "worker/common/status_macros.h"

namespace doze {
namespace {

absl::Status CheckSizes(const BatchMetadata& batch) {
  const size_t num_tokens = batch.token_ids.size();
  if (num_tokens == 0) return absl::InvalidArgumentError("batch.token_ids: empty batch");
  if (batch.positions.size() != num_tokens || batch.slot_mapping.size() != num_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("batch: token_ids has ", num_tokens,
                                                   " entries, positions ", batch.positions.size(),
                                                   ", slot_mapping ", batch.slot_mapping.size()));
  }
  const size_t num_seqs = batch.seq_lens.size();
  if (num_seqs == 0) return absl::InvalidArgumentError("batch.seq_lens: no sequences");
  if (batch.query_start_loc.size() != num_seqs + 1) {
    return absl::InvalidArgumentError(absl::StrCat("batch.query_start_loc: ", batch.query_start_loc.size(),
                                                   " entries for ", num_seqs, " sequences"));
  }
  if (batch.max_blocks_per_seq <= 0 ||
      batch.block_tables.size() != num_seqs * static_cast<size_t>(batch.max_blocks_per_seq)) {
    return absl::InvalidArgumentError(absl::StrCat("batch.block_tables: ", batch.block_tables.size(),
                                                   " entries for ", num_seqs, " sequences of ",
                                                   batch.max_blocks_per_seq, " blocks"));
  }
  if (!batch.token_sources.empty() && batch.token_sources.size() != num_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("batch.token_sources: ", batch.token_sources.size(),
                                                   " entries for ", num_tokens, " tokens"));
  }
  if (batch.query_start_loc.front() != 0 ||
      batch.query_start_loc.back() != static_cast<int64_t>(num_tokens)) {
    return absl::InvalidArgumentError(
        "batch.query_start_loc: must start at 0 and end at the number of tokens");
  }
  return absl::OkStatus();
}

// The block table of sequence s covers its context with valid pool blocks.
absl::Status CheckBlockTable(const BatchMetadata& batch, int s, const BatchLimits& limits) {
  const int64_t seq_len = batch.seq_lens[s];
  const int64_t num_blocks = (seq_len + limits.block_size - 1) / limits.block_size;
  if (num_blocks > batch.max_blocks_per_seq) {
    return absl::InvalidArgumentError(absl::StrCat("batch.seq_lens[", s, "]: ", seq_len, " tokens need ",
                                                   num_blocks, " blocks, the table has ",
                                                   batch.max_blocks_per_seq));
  }
  const int32_t* table = batch.block_table(s);
  for (int64_t b = 0; b < num_blocks; ++b) {
    if (table[b] < 0 || table[b] >= limits.num_kv_blocks) {
      return absl::InvalidArgumentError(absl::StrCat("batch.block_tables[", s, "][", b, "]: block ", table[b],
                                                     " is not in the pool of ", limits.num_kv_blocks));
    }
  }
  return absl::OkStatus();
}

// Row `row`, the i-th new token of sequence s, has the expected position, slot and token id.
absl::Status CheckToken(const BatchMetadata& batch, int s, int row, int64_t expected_position,
                        const BatchLimits& limits) {
  if (batch.positions[row] != expected_position) {
    return absl::InvalidArgumentError(absl::StrCat("batch.positions[", row, "]: ", batch.positions[row],
                                                   ", expected ", expected_position, " (sequence ", s, ")"));
  }
  const int64_t block = batch.block_table(s)[expected_position / limits.block_size];
  const int64_t slot = block * limits.block_size + expected_position % limits.block_size;
  if (batch.slot_mapping[row] != slot) {
    return absl::InvalidArgumentError(absl::StrCat("batch.slot_mapping[", row, "]: ", batch.slot_mapping[row],
                                                   ", the block table gives ", slot));
  }
  if (!batch.token_sources.empty() && batch.token_sources[row] >= 0) {
    if (batch.token_sources[row] >= limits.num_previous_samples) {
      return absl::InvalidArgumentError(
          absl::StrCat("batch.token_sources[", row, "]: row ", batch.token_sources[row],
                       " of a previous step that sampled ", limits.num_previous_samples));
    }
  } else if (batch.token_ids[row] < 0 || batch.token_ids[row] >= limits.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("batch.token_ids[", row, "]: ", batch.token_ids[row],
                                                   " is outside the vocabulary of ", limits.vocab_size));
  }
  return absl::OkStatus();
}

absl::Status CheckSequence(const BatchMetadata& batch, int s, const BatchLimits& limits) {
  const int32_t start = batch.query_start_loc[s];
  const int32_t end = batch.query_start_loc[s + 1];
  const int64_t seq_len = batch.seq_lens[s];
  if (end < start || seq_len < end - start) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch: sequence ", s, " has rows [", start, ", ", end, ") and seq_len ", seq_len));
  }
  RETURN_IF_ERROR(CheckBlockTable(batch, s, limits));
  const int64_t first_position = seq_len - (end - start);
  for (int row = start; row < end; ++row) {
    RETURN_IF_ERROR(CheckToken(batch, s, row, first_position + (row - start), limits));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateBatch(const BatchMetadata& batch, const BatchLimits& limits) {
  RETURN_IF_ERROR(CheckSizes(batch));
  for (int s = 0; s < batch.num_seqs(); ++s) {
    if (batch.query_start_loc[s] > batch.query_start_loc[s + 1]) {
      return absl::InvalidArgumentError(absl::StrCat("batch.query_start_loc[", s + 1, "]: decreases"));
    }
  }
  for (int s = 0; s < batch.num_seqs(); ++s) RETURN_IF_ERROR(CheckSequence(batch, s, limits));
  for (int i = 0; i < batch.num_logits(); ++i) {
    const int32_t row = batch.logits_indices[i];
    if (row < 0 || row >= batch.num_tokens()) {
      return absl::InvalidArgumentError(absl::StrCat("batch.logits_indices[", i, "]: row ", row,
                                                     " is outside the batch of ", batch.num_tokens()));
    }
  }
  return absl::OkStatus();
}

}  // namespace doze

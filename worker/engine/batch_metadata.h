// One forward step described as flat arrays: what the scheduler hands the model runner. No Sequence in sight.
#pragma once

#include <cstdint>
#include <vector>

namespace doze {

// Tokens of all scheduled sequences are laid end to end: sequence s owns rows
// [query_start_loc[s], query_start_loc[s + 1]) of token_ids/positions/slot_mapping.
// A prefill chunk contributes many rows, a decode step one.
struct BatchMetadata {
  std::vector<int32_t> token_ids;        // [num_tokens]
  std::vector<int32_t> positions;        // [num_tokens] position of each token in its sequence
  std::vector<int32_t> slot_mapping;     // [num_tokens] KV slot written: block_id * block_size + offset
  std::vector<int32_t> query_start_loc;  // [num_seqs + 1]
  std::vector<int32_t> seq_lens;         // [num_seqs] KV length after this step (cached + new tokens)
  std::vector<int32_t> block_tables;     // [num_seqs, max_blocks_per_seq], unused entries -1
  int32_t max_blocks_per_seq = 0;
  std::vector<int32_t> logits_indices;  // [num_logits] rows whose next-token logits are wanted
  // [num_tokens] or empty. Row r with token_sources[r] >= 0 takes as its token the one that logits row
  // token_sources[r] of the previous step submitted to the runner samples
  // (ModelRunner::SubmitForwardAndSample), which may not have reached the host yet; token_ids[r] is then a
  // placeholder.
  std::vector<int32_t> token_sources;

  int num_tokens() const { return static_cast<int>(token_ids.size()); }
  int num_seqs() const { return static_cast<int>(seq_lens.size()); }
  int num_logits() const { return static_cast<int>(logits_indices.size()); }
  // The block table row of sequence `s`.
  const int32_t* block_table(int s) const {
    return block_tables.data() + static_cast<size_t>(s) * max_blocks_per_seq;
  }
};

}  // namespace doze

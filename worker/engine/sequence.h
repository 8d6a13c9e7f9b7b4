// One request as the scheduler sees it: prompt and output tokens, where its KV lives, how far it has been
// computed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "worker/engine/logit_edit_tracker.h"
#include "worker/engine/sampling_params.h"

namespace doze {

// The token id a sequence holds for a token sampled by a step still in flight.
inline constexpr int32_t kPendingToken = -1;

enum class SequenceStatus {
  kWaiting,    // admitted by AddRequest, never scheduled yet
  kRunning,    // holds KV blocks and is scheduled every step
  kPreempted,  // lost its blocks to an older sequence; waits to be recomputed (prompt + output so far)
  kFinished,
};

// The token ids of a request and its KV bookkeeping. Tokens [0, num_computed_tokens) have KV in the blocks of
// block_table; the rest are computed by the next steps, a prefill chunk or one decode token at a time.
class Sequence {
 public:
  Sequence(uint64_t id, std::vector<int32_t> prompt_token_ids, SamplingParams params, uint64_t rng_seed);

  uint64_t id() const { return id_; }
  const SamplingParams& params() const { return params_; }
  // The seed of this sequence's sampling: the request's, or one the engine drew for it.
  uint64_t rng_seed() const { return rng_seed_; }

  SequenceStatus status() const { return status_; }
  void set_status(SequenceStatus status) { status_ = status; }

  // Prompt followed by output.
  absl::Span<const int32_t> token_ids() const { return token_ids_; }
  absl::Span<const int32_t> prompt_token_ids() const {
    return absl::MakeConstSpan(token_ids_).first(num_prompt_tokens_);
  }
  absl::Span<const int32_t> output_token_ids() const {
    return absl::MakeConstSpan(token_ids_).subspan(num_prompt_tokens_);
  }
  int num_tokens() const { return static_cast<int>(token_ids_.size()); }
  int num_prompt_tokens() const { return num_prompt_tokens_; }
  int num_output_tokens() const { return num_tokens() - num_prompt_tokens_; }
  // How often each token id occurs in the output (for presence and frequency penalties). Counted on first
  // use after tokens were appended, so sequences without penalties never pay for the map.
  const absl::flat_hash_map<int32_t, int>& output_token_counts() const;
  // This sequence's logit bias and penalties as one edit per token they touch (what Sampler::Process does to
  // the row before temperature), brought up to date with the tokens appended since the last call; valid until
  // the next call.
  absl::Span<const LogitEdit> logit_edits() const {
    return logit_edits_.Update(params_, token_ids_, num_prompt_tokens_, output_token_counts());
  }
  // Appends a sampled token.
  void AppendToken(int32_t token_id);
  // Appends the token that row `sample_row` of a step still running on the device will sample: a placeholder
  // (kPendingToken) until ResolvePendingToken, so that the next step can be scheduled before the token is
  // known (its row then reads the token on the device: BatchMetadata::token_sources).
  void AppendPendingToken(int sample_row);
  // Replaces the pending last token with the sampled one.
  void ResolvePendingToken(int32_t token_id);
  // The in-flight step's logits row that samples the last token, or -1 when the last token is known.
  int pending_sample_row() const { return pending_sample_row_; }
  // Whether the pending last token is the last this sequence may have (max_tokens): nothing more to schedule.
  bool final_token_pending() const {
    return pending_sample_row_ >= 0 && num_output_tokens() >= params_.max_tokens;
  }

  // Tokens whose KV is in the cache.
  int num_computed_tokens() const { return num_computed_tokens_; }
  void set_num_computed_tokens(int n) { num_computed_tokens_ = n; }
  // Tokens still to run through the model before the next token can be sampled.
  int num_pending_tokens() const { return num_tokens() - num_computed_tokens_; }
  // Leading tokens taken from the prefix cache at the latest admission.
  int num_cached_tokens() const { return num_cached_tokens_; }
  void set_num_cached_tokens(int n) { num_cached_tokens_ = n; }
  // Prompt tokens taken from the prefix cache at the first admission: what usage reports.
  int num_prompt_cached_tokens() const { return num_prompt_cached_tokens_; }
  void set_num_prompt_cached_tokens(int n) { num_prompt_cached_tokens_ = n; }

  // KV block ids, in token order.
  const std::vector<int32_t>& block_table() const { return block_table_; }
  std::vector<int32_t>& mutable_block_table() { return block_table_; }
  // Full blocks of block_table already offered to the prefix cache.
  int num_committed_blocks() const { return num_committed_blocks_; }
  void set_num_committed_blocks(int n) { num_committed_blocks_ = n; }
  // Memoised prefix-cache hash chain of the full blocks (a function of the tokens alone, so it survives
  // preemption).
  std::vector<uint64_t>& block_hashes() { return block_hashes_; }

  // The order in which the scheduler admitted this sequence last (larger: more recent).
  uint64_t admission_order() const { return admission_order_; }
  void set_admission_order(uint64_t order) { admission_order_ = order; }

 private:
  uint64_t id_;
  std::vector<int32_t> token_ids_;
  int num_prompt_tokens_;
  SamplingParams params_;
  uint64_t rng_seed_;
  SequenceStatus status_ = SequenceStatus::kWaiting;
  // Counts of output tokens [0, num_counted_output_tokens_); output_token_counts() catches up.
  mutable absl::flat_hash_map<int32_t, int> output_token_counts_;
  mutable int num_counted_output_tokens_ = 0;
  mutable LogitEditTracker logit_edits_;
  int num_computed_tokens_ = 0;
  int num_cached_tokens_ = 0;
  int num_prompt_cached_tokens_ = 0;
  std::vector<int32_t> block_table_;
  int num_committed_blocks_ = 0;
  std::vector<uint64_t> block_hashes_;
  uint64_t admission_order_ = 0;
  int pending_sample_row_ = -1;
};

}  // namespace doze

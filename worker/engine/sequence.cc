#include "worker/engine/sequence.h"

#include <utility>

#include "worker/common/logging.h"

namespace doze {

Sequence::Sequence(uint64_t id, std::vector<int32_t> prompt_token_ids, SamplingParams params,
                   uint64_t rng_seed)
    : id_(id),
      token_ids_(std::move(prompt_token_ids)),
      num_prompt_tokens_(static_cast<int>(token_ids_.size())),
      params_(std::move(params)),
      rng_seed_(rng_seed) {}

void Sequence::AppendToken(int32_t token_id) { token_ids_.push_back(token_id); }

void Sequence::AppendPendingToken(int sample_row) {
  DOZE_CHECK(pending_sample_row_ < 0) << "sequence " << id_ << " has a pending token already";
  token_ids_.push_back(kPendingToken);
  pending_sample_row_ = sample_row;
}

void Sequence::ResolvePendingToken(int32_t token_id) {
  DOZE_CHECK(pending_sample_row_ >= 0) << "sequence " << id_ << " has no pending token";
  token_ids_.back() = token_id;
  pending_sample_row_ = -1;
}

const absl::flat_hash_map<int32_t, int>& Sequence::output_token_counts() const {
  const absl::Span<const int32_t> output = output_token_ids();
  for (; num_counted_output_tokens_ < static_cast<int>(output.size()); ++num_counted_output_tokens_) {
    ++output_token_counts_[output[num_counted_output_tokens_]];
  }
  return output_token_counts_;
}

}  // namespace doze

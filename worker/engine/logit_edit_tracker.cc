#include "worker/engine/logit_edit_tracker.h"

namespace doze {

LogitEdit& LogitEditTracker::EditOf(int32_t id) {
  auto [it, inserted] = index_.try_emplace(id, static_cast<int>(edits_.size()));
  if (inserted) edits_.push_back(LogitEdit{id});
  return edits_[it->second];
}

absl::Span<const LogitEdit> LogitEditTracker::Update(const SamplingParams& params,
                                                     absl::Span<const int32_t> token_ids,
                                                     int num_prompt_tokens,
                                                     const absl::flat_hash_map<int32_t, int>& output_counts) {
  if (num_folded_tokens_ < 0) {
    for (const auto& [id, bias] : params.logit_bias) EditOf(id).bias = bias;
    num_folded_tokens_ = 0;
  }
  const bool repetition = params.repetition_penalty != 1.0f;
  const bool presence_frequency = params.presence_penalty != 0.0f || params.frequency_penalty != 0.0f;
  for (; num_folded_tokens_ < static_cast<int>(token_ids.size()); ++num_folded_tokens_) {
    const bool output = num_folded_tokens_ >= num_prompt_tokens;
    if (!repetition && !(presence_frequency && output)) continue;
    const int32_t id = token_ids[num_folded_tokens_];
    LogitEdit& edit = EditOf(id);
    if (repetition) edit.repetition = params.repetition_penalty;
    if (presence_frequency && output) {
      const int count = output_counts.at(id);
      // The expression of ApplyPresenceFrequencyPenalties, so the result is the same float.
      edit.subtract =
          (count > 0 ? params.presence_penalty : 0.0f) + params.frequency_penalty * static_cast<float>(count);
    }
  }
  return edits_;
}

}  // namespace doze

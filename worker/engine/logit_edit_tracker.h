// A sequence's logit edits (logit bias and the repetition, presence and frequency penalties as one LogitEdit
// per token they touch), kept up to date as tokens are appended, so that a step costs the new tokens only
// instead of a pass over prompt and output.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "worker/engine/logit_edit.h"
#include "worker/engine/sampling_params.h"

namespace doze {

class LogitEditTracker {
 public:
  // The edits that Sampler::Process's bias and penalties amount to for `token_ids` (the prompt's
  // `num_prompt_tokens` first; `output_counts` counts every output token), folding in the tokens appended
  // since the last call. `params` and the tokens already folded must not change between calls. The span is
  // valid until the next call.
  absl::Span<const LogitEdit> Update(const SamplingParams& params, absl::Span<const int32_t> token_ids,
                                     int num_prompt_tokens,
                                     const absl::flat_hash_map<int32_t, int>& output_counts);

 private:
  // The edit of `id`, a neutral one appended on first sight.
  LogitEdit& EditOf(int32_t id);

  std::vector<LogitEdit> edits_;
  absl::flat_hash_map<int32_t, int> index_;  // token id -> its edit in edits_
  int num_folded_tokens_ = -1;               // -1: not even the logit bias yet
};

}  // namespace doze

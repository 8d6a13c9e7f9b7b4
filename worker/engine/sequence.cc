#include "worker/engine/sequence.h"

#include <utility>

namespace doze {

Sequence::Sequence(uint64_t id, std::vector<int32_t> prompt_token_ids, SamplingParams params,
                   uint64_t rng_seed)
    : id_(id),
      token_ids_(std::move(prompt_token_ids)),
      num_prompt_tokens_(static_cast<int>(token_ids_.size())),
      params_(std::move(params)),
      rng_seed_(rng_seed) {}

void Sequence::AppendToken(int32_t token_id) {
  token_ids_.push_back(token_id);
  ++output_token_counts_[token_id];
}

}  // namespace doze

#include "worker/engine/sampling_params.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace doze {
namespace {

absl::Status Invalid(const std::string& field, const std::string& rule, double value) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": must be ", rule, ", got ", value));
}

}  // namespace

absl::Status SamplingParams::Validate(int vocab_size) const {
  if (!(temperature >= 0.0f && temperature <= 100.0f))
    return Invalid("temperature", "in [0, 100]", temperature);
  if (top_k < -1) return Invalid("top_k", "-1, 0 or positive", top_k);
  if (!(top_p > 0.0f && top_p <= 1.0f)) return Invalid("top_p", "in (0, 1]", top_p);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return Invalid("min_p", "in [0, 1]", min_p);
  if (!(repetition_penalty > 0.0f && std::isfinite(repetition_penalty))) {
    return Invalid("repetition_penalty", "positive", repetition_penalty);
  }
  if (!(std::abs(presence_penalty) <= 2.0f))
    return Invalid("presence_penalty", "in [-2, 2]", presence_penalty);
  if (!(std::abs(frequency_penalty) <= 2.0f))
    return Invalid("frequency_penalty", "in [-2, 2]", frequency_penalty);
  for (const auto& [token_id, bias] : logit_bias) {
    if (token_id < 0 || token_id >= vocab_size) {
      return Invalid(absl::StrCat("logit_bias[", token_id, "]"),
                     absl::StrCat("a token id below ", vocab_size), token_id);
    }
    if (!std::isfinite(bias)) return Invalid(absl::StrCat("logit_bias[", token_id, "]"), "finite", bias);
  }
  if (top_logprobs < 0 || top_logprobs > 20) return Invalid("top_logprobs", "in [0, 20]", top_logprobs);
  for (int32_t id : stop_token_ids) {
    if (id < 0 || id >= vocab_size) return Invalid("stop_token_ids", absl::StrCat("below ", vocab_size), id);
  }
  for (const std::string& s : stop) {
    if (s.empty()) return absl::InvalidArgumentError("stop: stop strings must not be empty");
  }
  if (max_tokens < 1) return Invalid("max_tokens", "at least 1", max_tokens);
  if (top_logits < 0 || top_logits > vocab_size) {
    return Invalid("top_logits", absl::StrCat("in [0, ", vocab_size, "]"), top_logits);
  }
  return absl::OkStatus();
}

}  // namespace doze

// Accumulates a request's step outputs into the JSON object `doze generate` prints for it.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "worker/engine/request_output.h"

namespace doze::cli {

class GenerationResult {
 public:
  // Adds one step's output of this request.
  void Add(const RequestOutput& output);
  bool finished() const { return finished_; }
  // {"ids", "text", "finish_reason", "usage": {"prompt_tokens", "completion_tokens", "cached_tokens"}}, plus
  // "top_logits" and "logprobs" when they were asked for.
  nlohmann::json ToJson() const;

 private:
  std::vector<int32_t> ids_;
  std::string text_;
  std::vector<TokenLogprobs> logprobs_;
  std::optional<TopLogits> top_logits_;
  bool finished_ = false;
  FinishReason finish_reason_ = FinishReason::kNone;
  Usage usage_;
};

}  // namespace doze::cli

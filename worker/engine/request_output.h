// What the engine reports about a request after each step.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "worker/engine/sampler.h"

namespace doze {

enum class FinishReason {
  kNone,    // still running
  kStop,    // an end-of-sequence token, a stop token id or a stop string
  kLength,  // max_tokens reached
  kAbort,   // Engine::Abort
};

// The OpenAI spelling: "stop", "length", "abort" ("" for kNone).
std::string_view FinishReasonName(FinishReason reason);

// Token counts, as OpenAI's usage object reports them.
struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;  // prompt tokens whose KV came from the prefix cache
};

// One request's progress in one step.
struct RequestOutput {
  uint64_t id = 0;
  std::string request_id;
  std::vector<int32_t> new_token_ids;
  // New text; text that may still turn out to begin a stop string (or an incomplete character) is held back.
  std::string text_delta;
  std::vector<TokenLogprobs> logprobs;         // one per new token when requested
  std::optional<TopLogits> prompt_top_logits;  // with the first token, when SamplingParams::top_logits > 0
  bool finished = false;
  FinishReason finish_reason = FinishReason::kNone;
  Usage usage;
};

}  // namespace doze

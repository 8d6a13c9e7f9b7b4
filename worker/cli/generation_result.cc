#include "worker/cli/generation_result.h"

namespace doze::cli {
namespace {

using nlohmann::json;

json TopLogitsJson(const TopLogits& top) {
  json ids = json::array(), logits = json::array();
  for (const TokenValue& entry : top.top) {
    ids.push_back(entry.token_id);
    logits.push_back(entry.value);
  }
  return {{"ids", ids}, {"logits", logits}, {"logsumexp", top.logsumexp}};
}

json LogprobsJson(const std::vector<TokenLogprobs>& tokens) {
  json out = json::array();
  for (const TokenLogprobs& token : tokens) {
    json top = json::array();
    for (const TokenValue& entry : token.top)
      top.push_back({{"id", entry.token_id}, {"logprob", entry.value}});
    out.push_back({{"id", token.token_id}, {"logprob", token.logprob}, {"top_logprobs", top}});
  }
  return out;
}

}  // namespace

void GenerationResult::Add(const RequestOutput& output) {
  ids_.insert(ids_.end(), output.new_token_ids.begin(), output.new_token_ids.end());
  text_ += output.text_delta;
  logprobs_.insert(logprobs_.end(), output.logprobs.begin(), output.logprobs.end());
  if (output.prompt_top_logits) top_logits_ = output.prompt_top_logits;
  usage_ = output.usage;
  if (output.finished) {
    finished_ = true;
    finish_reason_ = output.finish_reason;
  }
}

json GenerationResult::ToJson() const {
  json out = {{"ids", ids_},
              {"text", text_},
              {"finish_reason", std::string(FinishReasonName(finish_reason_))},
              {"usage",
               {{"prompt_tokens", usage_.prompt_tokens},
                {"completion_tokens", usage_.completion_tokens},
                {"cached_tokens", usage_.cached_tokens}}}};
  if (top_logits_) out["top_logits"] = TopLogitsJson(*top_logits_);
  if (!logprobs_.empty()) out["logprobs"] = LogprobsJson(logprobs_);
  return out;
}

}  // namespace doze::cli

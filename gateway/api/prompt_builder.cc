#include "gateway/api/prompt_builder.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "gateway/openai/api_error.h"
#include "worker/common/status_macros.h"
#include "worker/tokenizer/chat_template.h"

namespace doze::gateway {
namespace {

// The completion budget when neither the request nor the function sets max_tokens.
constexpr int kDefaultMaxTokens = 1024;

void SetSampling(const CompletionRequest& request, const FunctionConfig& function, int max_tokens,
                 v1::SamplingParameters* sampling) {
  std::optional<double> temperature =
      request.temperature.has_value() ? request.temperature : function.temperature;
  if (temperature.has_value()) sampling->set_temperature(static_cast<float>(*temperature));
  std::optional<double> top_p = request.top_p.has_value() ? request.top_p : function.top_p;
  if (top_p.has_value()) sampling->set_top_p(static_cast<float>(*top_p));
  if (request.seed.has_value()) sampling->set_seed(*request.seed);
  if (request.presence_penalty.has_value())
    sampling->set_presence_penalty(static_cast<float>(*request.presence_penalty));
  if (request.frequency_penalty.has_value()) {
    sampling->set_frequency_penalty(static_cast<float>(*request.frequency_penalty));
  }
  for (const auto& [token, bias] : request.logit_bias) (*sampling->mutable_logit_bias())[token] = bias;
  sampling->set_logprobs(request.logprobs);
  sampling->set_top_logprobs(request.top_logprobs);
  for (const std::string& stop : request.stop) sampling->add_stop(stop);
  sampling->set_max_tokens(max_tokens);
  if (request.top_k.has_value()) sampling->set_top_k(*request.top_k);
  if (request.min_p.has_value()) sampling->set_min_p(static_cast<float>(*request.min_p));
  if (request.repetition_penalty.has_value())
    sampling->set_repetition_penalty(static_cast<float>(*request.repetition_penalty));
  for (int32_t id : request.stop_token_ids) sampling->add_stop_token_ids(id);
  sampling->set_ignore_eos(request.ignore_eos);
}

void SetResponseFormat(const CompletionRequest& request, const FunctionConfig& function,
                       v1::ResponseFormat* format) {
  ResponseFormatSpec spec =
      request.response_format.value_or(ResponseFormatSpec{function.response_format, ""});
  if (spec.type == "json_object") format->set_type(v1::ResponseFormat::TYPE_JSON_OBJECT);
  if (spec.type == "json_schema") {
    format->set_type(v1::ResponseFormat::TYPE_JSON_SCHEMA);
    format->set_json_schema(spec.json_schema);
  }
}

// Token ids the request names (logit_bias's keys, stop_token_ids) inside the model's vocabulary.
absl::Status CheckTokenIds(const CompletionRequest& request, int vocab_size) {
  const auto past = [vocab_size](const char* param, int32_t token) {
    return InvalidParam(
        param, absl::StrCat(param, ": token id ", token, " is past the model's vocabulary of ", vocab_size));
  };
  for (const auto& [token, bias] : request.logit_bias) {
    if (token >= vocab_size) return past("logit_bias", token);
  }
  for (int32_t token : request.stop_token_ids) {
    if (token >= vocab_size) return past("stop_token_ids", token);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> PromptBuilder::PromptIds(const CompletionRequest& request,
                                                              const FunctionConfig& function) const {
  absl::StatusOr<std::vector<int32_t>> ids;
  if (request.chat) {
    std::vector<ChatMessage> messages = request.messages;
    bool has_system = !messages.empty() && messages.front().role == "system";
    if (!has_system && !function.system_prompt.empty()) {
      messages.insert(messages.begin(), ChatMessage{"system", function.system_prompt});
    }
    ids = EncodeChatPrompt(*tokenizer_, messages);
  } else if (!request.prompt_ids.empty()) {
    for (int32_t id : request.prompt_ids) {
      if (!tokenizer_->IsKnown(id))
        return InvalidParam("prompt", absl::StrCat("prompt: token id ", id, " is not in the vocabulary"));
    }
    ids = request.prompt_ids;
  } else {
    ids = tokenizer_->Encode(request.prompt);
  }
  if (!ids.ok())
    return InvalidParam(request.chat ? "messages" : "prompt", std::string(ids.status().message()));
  if (ids->empty()) return InvalidParam("prompt", "prompt: must not be empty");
  return ids;
}

absl::StatusOr<BuiltPrompt> PromptBuilder::Build(const CompletionRequest& request,
                                                 const FunctionConfig& function,
                                                 const std::string& request_id) const {
  RETURN_IF_ERROR(CheckTokenIds(request, vocab_size_));
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, PromptIds(request, function));
  BuiltPrompt built;
  built.prompt_tokens = static_cast<int>(ids.size());
  // A budget the request does not set (the function's, or kDefaultMaxTokens) shrinks to the room the prompt
  // leaves; one the request sets must fit.
  const int room = context_length_ - built.prompt_tokens;
  built.max_tokens = request.max_tokens.has_value()
                         ? *request.max_tokens
                         : std::min(function.max_tokens.value_or(kDefaultMaxTokens), std::max(room, 1));
  const int64_t requested = static_cast<int64_t>(built.prompt_tokens) + built.max_tokens;
  const char* what = request.chat ? "messages" : "prompt";
  if (!request.max_tokens.has_value() && room < 1) {
    return WithCode(InvalidParam(what, absl::StrCat("This model's maximum context length is ",
                                                    context_length_, " tokens. However, the ",
                                                    request.chat ? "messages hold " : "prompt holds ",
                                                    built.prompt_tokens,
                                                    " tokens, which leaves no room for a completion. Please "
                                                    "reduce the length of the ",
                                                    what, ".")),
                    "context_length_exceeded");
  }
  if (requested > context_length_) {
    return WithCode(
        InvalidParam(what, absl::StrCat("This model's maximum context length is ", context_length_,
                                        " tokens. However, you requested ", requested, " tokens (",
                                        built.prompt_tokens, " in the ", what, ", ", built.max_tokens,
                                        " in the completion). Please reduce the length of the ", what,
                                        " or completion.")),
        "context_length_exceeded");
  }
  built.request.set_request_id(request_id);
  built.request.mutable_token_ids()->mutable_ids()->Assign(ids.begin(), ids.end());
  SetSampling(request, function, built.max_tokens, built.request.mutable_sampling());
  SetResponseFormat(request, function, built.request.mutable_response_format());
  return built;
}

}  // namespace doze::gateway

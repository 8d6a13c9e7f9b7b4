#include "worker/service/proto_convert.h"

#include <nlohmann/json.hpp>

namespace doze::service {
namespace {

absl::StatusOr<PromptInput> ParsePrompt(const v1::GenerateRequest& request) {
  PromptInput prompt;
  switch (request.prompt_case()) {
    case v1::GenerateRequest::kMessages: {
      if (request.messages().messages().empty()) return absl::InvalidArgumentError("messages: empty");
      std::vector<ChatMessage> messages;
      for (const v1::ChatMessage& message : request.messages().messages()) {
        messages.push_back(ChatMessage{message.role(), message.content()});
      }
      prompt.messages = std::move(messages);
      return prompt;
    }
    case v1::GenerateRequest::kText:
      if (request.text().empty()) return absl::InvalidArgumentError("text: empty prompt");
      prompt.text = request.text();
      return prompt;
    case v1::GenerateRequest::kTokenIds:
      if (request.token_ids().ids().empty()) return absl::InvalidArgumentError("token_ids: empty prompt");
      prompt.token_ids.emplace(request.token_ids().ids().begin(), request.token_ids().ids().end());
      return prompt;
    default:
      return absl::InvalidArgumentError("prompt: give one of messages, text or token_ids");
  }
}

SamplingParams SamplingParamsFromProto(const v1::SamplingParameters& in) {
  SamplingParams params;
  if (in.has_temperature()) params.temperature = in.temperature();
  if (in.has_top_p()) params.top_p = in.top_p();
  if (in.has_top_k()) params.top_k = in.top_k();
  if (in.has_min_p()) params.min_p = in.min_p();
  if (in.has_seed()) params.seed = in.seed();
  if (in.has_repetition_penalty()) params.repetition_penalty = in.repetition_penalty();
  if (in.has_presence_penalty()) params.presence_penalty = in.presence_penalty();
  if (in.has_frequency_penalty()) params.frequency_penalty = in.frequency_penalty();
  for (const auto& [token_id, bias] : in.logit_bias()) params.logit_bias[token_id] = bias;
  params.logprobs = in.logprobs();
  params.top_logprobs = in.top_logprobs();
  params.stop.assign(in.stop().begin(), in.stop().end());
  params.stop_token_ids.assign(in.stop_token_ids().begin(), in.stop_token_ids().end());
  if (in.has_max_tokens()) params.max_tokens = in.max_tokens();
  params.ignore_eos = in.ignore_eos();
  params.top_logits = in.top_logits();
  return params;
}

absl::StatusOr<ResponseFormat> ParseResponseFormat(const v1::ResponseFormat& in) {
  ResponseFormat format{in.type(), in.json_schema()};
  if (in.type() == v1::ResponseFormat::TYPE_JSON_SCHEMA) {
    if (in.json_schema().empty()) return absl::InvalidArgumentError("response_format.json_schema: empty");
    if (!nlohmann::json::accept(in.json_schema())) {
      return absl::InvalidArgumentError("response_format.json_schema: not valid JSON");
    }
  }
  return format;
}

void TokenValuesToProto(const std::vector<TokenValue>& values,
                        google::protobuf::RepeatedPtrField<v1::TokenValue>* out) {
  for (const TokenValue& value : values) {
    v1::TokenValue* entry = out->Add();
    entry->set_token_id(value.token_id);
    entry->set_value(value.value);
  }
}

std::vector<TokenValue> TokenValuesFromProto(const google::protobuf::RepeatedPtrField<v1::TokenValue>& in) {
  std::vector<TokenValue> values;
  for (const v1::TokenValue& entry : in) values.push_back(TokenValue{entry.token_id(), entry.value()});
  return values;
}

}  // namespace

absl::StatusOr<ParsedRequest> ParseGenerateRequest(const v1::GenerateRequest& request) {
  ParsedRequest parsed;
  absl::StatusOr<PromptInput> prompt = ParsePrompt(request);
  if (!prompt.ok()) return prompt.status();
  parsed.prompt = *std::move(prompt);
  parsed.params = SamplingParamsFromProto(request.sampling());
  absl::StatusOr<ResponseFormat> format = ParseResponseFormat(request.response_format());
  if (!format.ok()) return format.status();
  parsed.response_format = *std::move(format);
  return parsed;
}

void SamplingParamsToProto(const SamplingParams& params, v1::SamplingParameters* out) {
  out->set_temperature(params.temperature);
  out->set_top_p(params.top_p);
  out->set_top_k(params.top_k);
  out->set_min_p(params.min_p);
  if (params.seed.has_value()) out->set_seed(*params.seed);
  out->set_repetition_penalty(params.repetition_penalty);
  out->set_presence_penalty(params.presence_penalty);
  out->set_frequency_penalty(params.frequency_penalty);
  for (const auto& [token_id, bias] : params.logit_bias) (*out->mutable_logit_bias())[token_id] = bias;
  out->set_logprobs(params.logprobs);
  out->set_top_logprobs(params.top_logprobs);
  for (const std::string& stop : params.stop) out->add_stop(stop);
  for (int32_t id : params.stop_token_ids) out->add_stop_token_ids(id);
  out->set_max_tokens(params.max_tokens);
  out->set_ignore_eos(params.ignore_eos);
  out->set_top_logits(params.top_logits);
}

void PromptToProto(const PromptInput& prompt, v1::GenerateRequest* out) {
  if (prompt.token_ids) {
    out->mutable_token_ids()->mutable_ids()->Add(prompt.token_ids->begin(), prompt.token_ids->end());
  } else if (prompt.text) {
    out->set_text(*prompt.text);
  } else if (prompt.messages) {
    v1::ChatMessages* messages = out->mutable_messages();
    for (const ChatMessage& message : *prompt.messages) {
      v1::ChatMessage* entry = messages->add_messages();
      entry->set_role(message.role);
      entry->set_content(message.content);
    }
  }
}

void AppendOutput(const RequestOutput& output, v1::GenerateResponse* response) {
  response->mutable_text_delta()->append(output.text_delta);
  response->mutable_token_ids()->Add(output.new_token_ids.begin(), output.new_token_ids.end());
  for (const TokenLogprobs& token : output.logprobs) {
    v1::TokenLogprob* entry = response->add_logprobs();
    entry->set_token_id(token.token_id);
    entry->set_logprob(token.logprob);
    TokenValuesToProto(token.top, entry->mutable_top());
  }
  if (output.prompt_top_logits) {
    v1::TopLogits* top = response->mutable_prompt_top_logits();
    TokenValuesToProto(output.prompt_top_logits->top, top->mutable_top());
    top->set_logsumexp(output.prompt_top_logits->logsumexp);
  }
  v1::Usage* usage = response->mutable_usage();
  usage->set_prompt_tokens(output.usage.prompt_tokens);
  usage->set_completion_tokens(output.usage.completion_tokens);
  usage->set_cached_tokens(output.usage.cached_tokens);
  if (output.finished) response->set_finish_reason(FinishReasonToProto(output.finish_reason));
}

RequestOutput OutputFromProto(const v1::GenerateResponse& response) {
  RequestOutput output;
  output.text_delta = response.text_delta();
  output.new_token_ids.assign(response.token_ids().begin(), response.token_ids().end());
  for (const v1::TokenLogprob& entry : response.logprobs()) {
    output.logprobs.push_back(
        TokenLogprobs{entry.token_id(), entry.logprob(), TokenValuesFromProto(entry.top())});
  }
  if (response.has_prompt_top_logits()) {
    output.prompt_top_logits = TopLogits{TokenValuesFromProto(response.prompt_top_logits().top()),
                                         response.prompt_top_logits().logsumexp()};
  }
  output.usage = Usage{response.usage().prompt_tokens(), response.usage().completion_tokens(),
                       response.usage().cached_tokens()};
  output.finish_reason = FinishReasonFromProto(response.finish_reason());
  output.finished = output.finish_reason != FinishReason::kNone;
  return output;
}

v1::FinishReason FinishReasonToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case FinishReason::kAbort:
      return v1::FINISH_REASON_ABORT;
    case FinishReason::kNone:
      break;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

FinishReason FinishReasonFromProto(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_STOP:
      return FinishReason::kStop;
    case v1::FINISH_REASON_LENGTH:
      return FinishReason::kLength;
    case v1::FINISH_REASON_ABORT:
      return FinishReason::kAbort;
    default:
      return FinishReason::kNone;
  }
}

}  // namespace doze::service

// An OpenAI chat completion or (legacy) completion request, parsed and range-checked into a typed struct.
// Errors are InvalidArgument with the offending field as OpenAI's "param".
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/tokenizer/chat_template.h"

namespace doze::gateway {

// `response_format`: passed to the worker unchanged.
struct ResponseFormatSpec {
  std::string type;         // "text", "json_object" or "json_schema".
  std::string json_schema;  // The schema as JSON text, for json_schema.
};

// The fields doze honours; anything else in the body is ignored.
struct CompletionRequest {
  bool chat = true;   // /v1/chat/completions (messages) or /v1/completions (prompt).
  std::string model;  // The function's name.
  std::vector<ChatMessage> messages;
  std::string prompt;
  std::vector<int32_t> prompt_ids;  // /v1/completions' prompt given as token ids (then `prompt` is empty).
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int> max_tokens;  // max_completion_tokens wins over max_tokens.
  std::vector<std::string> stop;
  std::optional<uint64_t> seed;
  std::optional<double> presence_penalty;
  std::optional<double> frequency_penalty;
  std::map<int32_t, float> logit_bias;
  // vLLM's extra sampling parameters, which its clients send beside OpenAI's.
  std::optional<int> top_k;                  // -1 or 0: off
  std::optional<double> min_p;               // 0: off
  std::optional<double> repetition_penalty;  // 1: off
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  bool logprobs = false;
  int top_logprobs = 0;
  std::optional<ResponseFormatSpec> response_format;
  std::string user;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

// Parses the JSON body of a chat completion (`chat`) or completion request: 400-class errors for malformed
// JSON, invalid UTF-8, wrong types, out-of-range values and n other than 1.
absl::StatusOr<CompletionRequest> ParseCompletionRequest(std::string_view body, bool chat);

// The "model" string of a JSON object body, or "" (for counting a request that fails to parse under the
// function it names).
std::string RequestedModel(std::string_view body);

}  // namespace doze::gateway

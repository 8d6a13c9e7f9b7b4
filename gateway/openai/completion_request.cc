#include "gateway/openai/completion_request.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gateway/openai/api_error.h"
#include "nlohmann/json.hpp"
#include "worker/common/status_macros.h"

namespace doze::gateway {
namespace {

using Json = nlohmann::json;

// Reads optional fields of one JSON object; absent and null read as unset.
class Fields {
 public:
  explicit Fields(const Json& object) : object_(object) {}

  const Json* Get(const char* key) const {
    auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }

  absl::Status Number(const char* key, double min, double max, std::optional<double>* out) const {
    const Json* value = Get(key);
    if (value == nullptr) return absl::OkStatus();
    if (!value->is_number()) return InvalidParam(key, absl::StrCat(key, ": must be a number"));
    double number = value->get<double>();
    if (number < min || number > max) {
      return InvalidParam(key, absl::StrCat(key, ": must be between ", min, " and ", max, ", got ", number));
    }
    *out = number;
    return absl::OkStatus();
  }

  absl::Status Integer(const char* key, int64_t min, int64_t max, std::optional<int64_t>* out) const {
    const Json* value = Get(key);
    if (value == nullptr) return absl::OkStatus();
    // A whole number written as a float (10.0, as Python's json writes a float) is that integer, as vLLM
    // takes it; one past 64 bits arrives as a double too: out of range, not "not an integer".
    const bool whole = value->is_number_integer() ||
                       (value->is_number_float() && std::trunc(value->get<double>()) == value->get<double>());
    if (!whole) return InvalidParam(key, absl::StrCat(key, ": must be an integer"));
    constexpr double kTwo63 = 9223372036854775808.0;
    const bool fits =
        value->is_number_float()
            ? value->get<double>() >= -kTwo63 && value->get<double>() < kTwo63
            : !value->is_number_unsigned() || value->get<uint64_t>() <= static_cast<uint64_t>(max);
    if (!fits) {
      return InvalidParam(
          key, absl::StrCat(key, ": must be between ", min, " and ", max, ", got ", value->dump()));
    }
    const int64_t number =
        value->is_number_float() ? static_cast<int64_t>(value->get<double>()) : value->get<int64_t>();
    if (number < min || number > max) {
      return InvalidParam(key, absl::StrCat(key, ": must be between ", min, " and ", max, ", got ", number));
    }
    *out = number;
    return absl::OkStatus();
  }

  absl::Status Bool(const char* key, bool* out) const {
    const Json* value = Get(key);
    if (value == nullptr) return absl::OkStatus();
    if (!value->is_boolean()) return InvalidParam(key, absl::StrCat(key, ": must be a boolean"));
    *out = value->get<bool>();
    return absl::OkStatus();
  }

  absl::Status String(const char* key, std::string* out) const {
    const Json* value = Get(key);
    if (value == nullptr) return absl::OkStatus();
    if (!value->is_string()) return InvalidParam(key, absl::StrCat(key, ": must be a string"));
    *out = value->get<std::string>();
    return absl::OkStatus();
  }

 private:
  const Json& object_;
};

// A message's content: a string, or an array of {"type": "text", "text": ...} parts joined.
absl::Status ParseContent(const Json& content, const std::string& param, std::string* out) {
  if (content.is_string()) {
    *out = content.get<std::string>();
    return absl::OkStatus();
  }
  if (!content.is_array())
    return InvalidParam(param, absl::StrCat(param, ": must be a string or an array of parts"));
  for (size_t i = 0; i < content.size(); ++i) {
    const Json& part = content[i];
    std::string part_param = absl::StrCat(param, "[", i, "]");
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
        !part["text"].is_string()) {
      return InvalidParam(part_param, absl::StrCat(part_param, ": only text parts are supported"));
    }
    *out += part["text"].get<std::string>();
  }
  return absl::OkStatus();
}

absl::Status ParseMessages(const Json* messages, std::vector<ChatMessage>* out) {
  if (messages == nullptr) return InvalidParam("messages", "messages: is required");
  if (!messages->is_array() || messages->empty()) {
    return InvalidParam("messages", "messages: must be a non-empty array");
  }
  for (size_t i = 0; i < messages->size(); ++i) {
    const Json& message = (*messages)[i];
    std::string param = absl::StrCat("messages[", i, "]");
    if (!message.is_object()) return InvalidParam(param, absl::StrCat(param, ": must be an object"));
    auto role = message.find("role");
    if (role == message.end() || !role->is_string()) {
      return InvalidParam(param + ".role", absl::StrCat(param, ".role: must be a string"));
    }
    std::string role_name = role->get<std::string>();
    if (role_name == "developer") role_name = "system";
    if (role_name != "system" && role_name != "user" && role_name != "assistant") {
      return InvalidParam(
          param + ".role",
          absl::StrCat(param, ".role: must be system, user or assistant, got \"", role_name, "\""));
    }
    ChatMessage parsed{role_name, ""};
    auto content = message.find("content");
    if (content != message.end() && !content->is_null()) {
      RETURN_IF_ERROR(ParseContent(*content, param + ".content", &parsed.content));
    } else if (role_name != "assistant") {  // only an assistant turn may come without content
      return InvalidParam(param + ".content",
                          absl::StrCat(param, ".content: required for a ", role_name, " message"));
    }
    auto name = message.find("name");
    if (name != message.end() && !name->is_null() && !name->is_string())
      return InvalidParam(param + ".name", absl::StrCat(param, ".name: must be a string"));
    out->push_back(std::move(parsed));
  }
  return absl::OkStatus();
}

absl::Status ParseStop(const Json* stop, std::vector<std::string>* out) {
  if (stop == nullptr) return absl::OkStatus();
  if (stop->is_string()) {
    if (stop->get<std::string>().empty()) return InvalidParam("stop", "stop: must not be an empty string");
    out->push_back(stop->get<std::string>());
    return absl::OkStatus();
  }
  if (!stop->is_array() || stop->size() > 4) {
    return InvalidParam("stop", "stop: must be a string or an array of at most 4 strings");
  }
  for (const Json& entry : *stop) {
    if (!entry.is_string() || entry.get<std::string>().empty()) {
      return InvalidParam("stop", "stop: every entry must be a non-empty string");
    }
    out->push_back(entry.get<std::string>());
  }
  return absl::OkStatus();
}

// A non-negative integer that fits an int32; whether the model's vocabulary holds it is checked later.
bool IsTokenId(const Json& id) {
  return id.is_number_integer() && id.get<int64_t>() >= 0 &&
         id.get<int64_t>() <= std::numeric_limits<int32_t>::max();
}

absl::Status ParseLogitBias(const Json* bias, std::map<int32_t, float>* out) {
  if (bias == nullptr) return absl::OkStatus();
  if (!bias->is_object()) return InvalidParam("logit_bias", "logit_bias: must be an object");
  for (const auto& [key, value] : bias->items()) {
    int32_t token = 0;
    if (!absl::SimpleAtoi(key, &token) || token < 0) {
      return InvalidParam("logit_bias", absl::StrCat("logit_bias: key \"", key, "\" is not a token id"));
    }
    if (!value.is_number() || value.get<double>() < -100 || value.get<double>() > 100) {
      return InvalidParam("logit_bias", "logit_bias: values must be numbers between -100 and 100");
    }
    (*out)[token] = value.get<float>();
  }
  return absl::OkStatus();
}

// OpenAI's json_schema object: a name of 1 to 64 letters, digits, '_' or '-', and optionally a string
// description, an object schema and a boolean strict.
absl::Status CheckJsonSchemaFormat(const Json& format) {
  auto invalid = [](const std::string& message) {
    return InvalidParam("response_format", absl::StrCat("response_format.json_schema.", message));
  };
  auto name = format.find("name");
  if (name == format.end() || !name->is_string()) return invalid("name: required, a string");
  const std::string& text = name->get_ref<const std::string&>();
  const bool name_ok =
      !text.empty() && text.size() <= 64 && std::all_of(text.begin(), text.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
      });
  if (!name_ok) return invalid("name: 1 to 64 letters, digits, '_' or '-'");
  auto description = format.find("description");
  if (description != format.end() && !description->is_string())
    return invalid("description: must be a string");
  auto schema = format.find("schema");
  if (schema != format.end() && !schema->is_object()) return invalid("schema: must be an object");
  auto strict = format.find("strict");
  if (strict != format.end() && !strict->is_null() && !strict->is_boolean())
    return invalid("strict: must be a boolean");
  return absl::OkStatus();
}

absl::Status ParseResponseFormat(const Json* format, std::optional<ResponseFormatSpec>* out) {
  if (format == nullptr) return absl::OkStatus();
  if (!format->is_object() || !format->contains("type") || !(*format)["type"].is_string()) {
    return InvalidParam("response_format", "response_format: must be an object with a string type");
  }
  ResponseFormatSpec spec{(*format)["type"].get<std::string>(), ""};
  if (spec.type == "json_schema") {
    auto schema = format->find("json_schema");
    if (schema == format->end() || !schema->is_object()) {
      return InvalidParam("response_format", "response_format.json_schema: must be an object");
    }
    RETURN_IF_ERROR(CheckJsonSchemaFormat(*schema));
    spec.json_schema = schema->dump();
  } else if (spec.type != "text" && spec.type != "json_object") {
    return InvalidParam("response_format", "response_format.type: must be text, json_object or json_schema");
  }
  *out = spec;
  return absl::OkStatus();
}

// vLLM's sampling parameters beyond OpenAI's, with vLLM's ranges: its clients rely on them (top_k 1 for a
// greedy answer at any temperature), and ignoring them would answer something else without a word.
absl::Status ParseVllmSampling(const Fields& fields, CompletionRequest* request) {
  std::optional<int64_t> top_k;
  RETURN_IF_ERROR(fields.Integer("top_k", -1, std::numeric_limits<int32_t>::max(), &top_k));
  if (top_k.has_value()) request->top_k = static_cast<int>(*top_k);
  RETURN_IF_ERROR(fields.Number("min_p", 0, 1, &request->min_p));
  RETURN_IF_ERROR(fields.Number("repetition_penalty", 0, 100, &request->repetition_penalty));
  if (request->repetition_penalty == 0.0)
    return InvalidParam("repetition_penalty", "repetition_penalty: must be in (0, 100]");
  RETURN_IF_ERROR(fields.Bool("ignore_eos", &request->ignore_eos));
  if (const Json* ids = fields.Get("stop_token_ids"); ids != nullptr && !ids->is_null()) {
    const bool valid = ids->is_array() && std::all_of(ids->begin(), ids->end(), IsTokenId);
    if (!valid) return InvalidParam("stop_token_ids", "stop_token_ids: must be an array of token ids");
    for (const Json& id : *ids) request->stop_token_ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  // Accepted by vLLM, not provided here: refused unless neutral (0), rather than ignored.
  if (const Json* min_tokens = fields.Get("min_tokens");
      min_tokens != nullptr && !(min_tokens->is_number_integer() && min_tokens->get<int64_t>() == 0)) {
    return InvalidParam("min_tokens", "min_tokens: only 0 is supported");
  }
  return absl::OkStatus();
}

absl::Status ParseSampling(const Fields& fields, CompletionRequest* request) {
  RETURN_IF_ERROR(fields.Number("temperature", 0, 2, &request->temperature));
  RETURN_IF_ERROR(fields.Number("top_p", 0, 1, &request->top_p));
  if (request->top_p == 0.0) return InvalidParam("top_p", "top_p: must be in (0, 1]");
  RETURN_IF_ERROR(fields.Number("presence_penalty", -2, 2, &request->presence_penalty));
  RETURN_IF_ERROR(fields.Number("frequency_penalty", -2, 2, &request->frequency_penalty));
  std::optional<int64_t> max_tokens, max_completion_tokens, seed, n;
  // Any budget that fits an int: one past the context is context_length_exceeded (PromptBuilder).
  constexpr int64_t kMaxBudget = std::numeric_limits<int32_t>::max();
  RETURN_IF_ERROR(fields.Integer("max_tokens", 1, kMaxBudget, &max_tokens));
  RETURN_IF_ERROR(fields.Integer("max_completion_tokens", 1, kMaxBudget, &max_completion_tokens));
  if (max_completion_tokens.has_value()) max_tokens = max_completion_tokens;
  if (max_tokens.has_value()) request->max_tokens = static_cast<int>(*max_tokens);
  RETURN_IF_ERROR(fields.Integer("seed", std::numeric_limits<int64_t>::min(),
                                 std::numeric_limits<int64_t>::max(), &seed));
  if (seed.has_value()) request->seed = static_cast<uint64_t>(*seed);
  RETURN_IF_ERROR(
      fields.Integer("n", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), &n));
  if (n.has_value() && *n != 1) return InvalidParam("n", absl::StrCat("n: only 1 is supported, got ", *n));
  RETURN_IF_ERROR(ParseStop(fields.Get("stop"), &request->stop));
  RETURN_IF_ERROR(ParseLogitBias(fields.Get("logit_bias"), &request->logit_bias));
  return ParseVllmSampling(fields, request);
}

// Chat: logprobs is a boolean with top_logprobs beside it. Completions: logprobs is the number of top tokens.
absl::Status ParseLogprobs(const Fields& fields, CompletionRequest* request) {
  std::optional<int64_t> top;
  if (request->chat) {
    RETURN_IF_ERROR(fields.Bool("logprobs", &request->logprobs));
    RETURN_IF_ERROR(fields.Integer("top_logprobs", 0, 20, &top));
    if (top.has_value() && !request->logprobs)
      return InvalidParam("top_logprobs", "top_logprobs: needs logprobs");
  } else {
    RETURN_IF_ERROR(fields.Integer("logprobs", 0, 5, &top));
    request->logprobs = top.has_value();
  }
  request->top_logprobs = static_cast<int>(top.value_or(0));
  return absl::OkStatus();
}

absl::Status ParseStreaming(const Fields& fields, CompletionRequest* request) {
  RETURN_IF_ERROR(fields.Bool("stream", &request->stream));
  const Json* options = fields.Get("stream_options");
  if (options == nullptr) return absl::OkStatus();
  if (!options->is_object()) return InvalidParam("stream_options", "stream_options: must be an object");
  if (!request->stream)
    return InvalidParam("stream_options", "stream_options: only allowed when stream is true");
  absl::Status status = Fields(*options).Bool("include_usage", &request->include_usage);
  return status.ok() ? status
                     : InvalidParam("stream_options", "stream_options.include_usage: must be a boolean");
}

// A string, an array of one string, an array of token ids or an array of one such array.
absl::Status ParsePrompt(const Json* prompt, CompletionRequest* request) {
  if (prompt != nullptr && prompt->is_array() && prompt->size() == 1 && !(*prompt)[0].is_number())
    prompt = &(*prompt)[0];
  if (prompt != nullptr && prompt->is_string()) {
    request->prompt = prompt->get<std::string>();
    return absl::OkStatus();
  }
  const bool ids = prompt != nullptr && prompt->is_array() && !prompt->empty() &&
                   std::all_of(prompt->begin(), prompt->end(), IsTokenId);
  if (!ids) {
    return InvalidParam(
        "prompt", "prompt: must be a string, an array of one string, or a non-empty array of token ids");
  }
  for (const Json& id : *prompt) request->prompt_ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
  return absl::OkStatus();
}

// OpenAI parameters whose effect doze does not provide are refused rather than ignored: tool and function
// calling and audio for chat; best_of, echo and suffix for completions. Their neutral values pass.
absl::Status RefuseUnsupported(const Fields& fields, bool chat) {
  const auto refuse = [](const char* key, const char* what) {
    return InvalidParam(key, absl::StrCat(key, ": ", what, " is not supported"));
  };
  const auto is_none = [](const Json* value) {
    return value->is_string() && value->get<std::string>() == "none";
  };
  if (chat) {
    for (const char* key : {"tools", "functions"}) {
      const Json* value = fields.Get(key);
      if (value != nullptr && !(value->is_array() && value->empty())) return refuse(key, "tool calling");
    }
    for (const char* key : {"tool_choice", "function_call"}) {
      const Json* value = fields.Get(key);
      if (value != nullptr && !is_none(value)) return refuse(key, "tool calling");
    }
    if (fields.Get("audio") != nullptr) return refuse("audio", "audio output");
    if (const Json* modalities = fields.Get("modalities"); modalities != nullptr) {
      const bool text_only =
          modalities->is_array() && std::all_of(modalities->begin(), modalities->end(), [](const Json& m) {
            return m.is_string() && m.get<std::string>() == "text";
          });
      if (!text_only) return refuse("modalities", "output other than text");
    }
    return absl::OkStatus();
  }
  if (const Json* best_of = fields.Get("best_of");
      best_of != nullptr && !(best_of->is_number_integer() && best_of->get<int64_t>() == 1)) {
    return InvalidParam("best_of", "best_of: only 1 is supported");
  }
  if (const Json* echo = fields.Get("echo"); echo != nullptr && !(echo->is_boolean() && !echo->get<bool>()))
    return refuse("echo", "echoing the prompt");
  if (const Json* suffix = fields.Get("suffix");
      suffix != nullptr && !(suffix->is_string() && suffix->get<std::string>().empty())) {
    return refuse("suffix", "a suffix (insertion)");
  }
  return absl::OkStatus();
}

absl::StatusOr<Json> ParseJson(std::string_view body) {
  Json parsed = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    try {
      parsed = Json::parse(body.begin(), body.end());
    } catch (const Json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
      std::string what = e.what();
      // nlohmann's "[json.exception.parse_error.101] " names the library, not the request.
      if (absl::StartsWith(what, "[json.exception."))
        what.erase(0, std::min(what.size(), what.find("] ") + 2));
      bool utf8 = what.find("UTF-8") != std::string::npos || what.find("utf-8") != std::string::npos;
      return absl::InvalidArgumentError(utf8 ? absl::StrCat("request body is not valid UTF-8: ", what)
                                             : absl::StrCat("request body is not valid JSON: ", what));
    }
  }
  if (!parsed.is_object()) return absl::InvalidArgumentError("request body must be a JSON object");
  return parsed;
}

}  // namespace

absl::StatusOr<CompletionRequest> ParseCompletionRequest(std::string_view body, bool chat) {
  ASSIGN_OR_RETURN(Json json, ParseJson(body));
  Fields fields(json);
  CompletionRequest request;
  request.chat = chat;
  const Json* model = fields.Get("model");
  if (model == nullptr || !model->is_string())
    return InvalidParam("model", "model: must be a string naming a function");
  request.model = model->get<std::string>();
  if (chat) {
    RETURN_IF_ERROR(ParseMessages(fields.Get("messages"), &request.messages));
  } else {
    RETURN_IF_ERROR(ParsePrompt(fields.Get("prompt"), &request));
  }
  RETURN_IF_ERROR(RefuseUnsupported(fields, chat));
  RETURN_IF_ERROR(ParseSampling(fields, &request));
  RETURN_IF_ERROR(ParseLogprobs(fields, &request));
  RETURN_IF_ERROR(ParseResponseFormat(fields.Get("response_format"), &request.response_format));
  RETURN_IF_ERROR(fields.String("user", &request.user));
  RETURN_IF_ERROR(ParseStreaming(fields, &request));
  return request;
}

std::string RequestedModel(std::string_view body) {
  Json parsed = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return "";
  auto model = parsed.find("model");
  return model != parsed.end() && model->is_string() ? model->get<std::string>() : "";
}

}  // namespace doze::gateway

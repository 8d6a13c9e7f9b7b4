#include "worker/cli/sampling_flags.h"

#include <filesystem>
#include <fstream>
#include <limits>
#include <type_traits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace doze::cli {
namespace {

using nlohmann::json;

// Whether `value` is an integer that T holds (JSON's get<T> would wrap one that it does not).
template <typename T>
bool FitsInt(const json& value) {
  if (value.is_number_unsigned())
    return value.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max());
  if (!value.is_number_integer()) return false;
  const int64_t v = value.get<int64_t>();
  return v >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
         v <= static_cast<int64_t>(std::numeric_limits<T>::max());
}

absl::StatusOr<std::vector<ChatMessage>> ParseMessages(const json& value) {
  if (!value.is_array()) return absl::InvalidArgumentError("messages: expected an array");
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < value.size(); ++i) {
    const json& m = value[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("messages[", i, "]: expected {\"role\": string, \"content\": string}"));
    }
    messages.push_back(ChatMessage{m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return messages;
}

absl::StatusOr<PromptInput> ParsePrompt(const json& line) {
  PromptInput prompt;
  if (line.contains("prompt_ids")) {
    const json& ids = line["prompt_ids"];
    if (!ids.is_array()) return absl::InvalidArgumentError("prompt_ids: expected an array of integers");
    std::vector<int32_t> token_ids;
    for (const json& id : ids) {
      if (!FitsInt<int32_t>(id) || id.get<int64_t>() < 0)
        return absl::InvalidArgumentError("prompt_ids: expected an array of token ids (integers from 0)");
      token_ids.push_back(id.get<int32_t>());
    }
    prompt.token_ids = std::move(token_ids);
  }
  if (line.contains("prompt")) {
    if (!line["prompt"].is_string()) return absl::InvalidArgumentError("prompt: expected a string");
    prompt.text = line["prompt"].get<std::string>();
  }
  if (line.contains("messages")) {
    auto messages = ParseMessages(line["messages"]);
    if (!messages.ok()) return messages.status();
    prompt.messages = *std::move(messages);
  }
  return prompt;
}

// Reads `key` into `field` when present; a wrong JSON type is an error naming the key.
template <typename T>
absl::Status Override(const json& line, const char* key, T& field) {
  if (!line.contains(key)) return absl::OkStatus();
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (!FitsInt<T>(line[key])) {
      return absl::InvalidArgumentError(absl::StrCat(key, ": expected an integer from ",
                                                     std::numeric_limits<T>::min(), " to ",
                                                     std::numeric_limits<T>::max()));
    }
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!line[key].is_number()) return absl::InvalidArgumentError(absl::StrCat(key, ": expected a number"));
  }
  try {
    field = line[key].get<T>();
  } catch (const json::exception&) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": wrong type"));
  }
  return absl::OkStatus();
}

absl::Status ApplyOverrides(const json& line, SamplingParams& params) {
  for (absl::Status status :
       {Override(line, "max_tokens", params.max_tokens), Override(line, "temperature", params.temperature),
        Override(line, "top_p", params.top_p), Override(line, "top_k", params.top_k),
        Override(line, "min_p", params.min_p), Override(line, "ignore_eos", params.ignore_eos),
        Override(line, "stop", params.stop)}) {
    if (!status.ok()) return status;
  }
  if (line.contains("seed")) {
    if (!line["seed"].is_number_unsigned())
      return absl::InvalidArgumentError("seed: expected a non-negative integer");
    params.seed = line["seed"].get<uint64_t>();
  }
  return absl::OkStatus();
}

}  // namespace

void AddSamplingOptions(po::options_description& options) {
  options.add_options()("max-tokens", po::value<int>()->default_value(128),
                        "most tokens to generate per request")(
      "temperature", po::value<float>()->default_value(0.0f), "0 is greedy")(
      "top-p", po::value<float>()->default_value(1.0f), "nucleus sampling mass")(
      "top-k", po::value<int>()->default_value(0), "keep the k most likely tokens (0: off)")(
      "min-p", po::value<float>()->default_value(0.0f), "drop tokens below min_p times the best one")(
      "seed", po::value<std::string>(), "sampling seed, 0 to 2^64-1 (the same seed gives the same output)")(
      "ignore-eos", po::bool_switch(), "keep generating past end-of-sequence tokens")(
      "top-logits", po::value<int>()->default_value(0),
      "report the K highest logits of the last prompt position")(
      "logprobs", po::value<int>(), "report the log-probability of each token and of the N most likely")(
      "repetition-penalty", po::value<float>()->default_value(1.0f), "Hugging Face repetition penalty")(
      "presence-penalty", po::value<float>()->default_value(0.0f), "OpenAI presence penalty")(
      "frequency-penalty", po::value<float>()->default_value(0.0f), "OpenAI frequency penalty")(
      "stop", po::value<std::vector<std::string>>()->composing(), "a stop string (repeatable)");
}

absl::StatusOr<SamplingParams> SamplingParamsFromFlags(const po::variables_map& vm) {
  SamplingParams params;
  params.max_tokens = vm["max-tokens"].as<int>();
  params.temperature = vm["temperature"].as<float>();
  params.top_p = vm["top-p"].as<float>();
  params.top_k = vm["top-k"].as<int>();
  params.min_p = vm["min-p"].as<float>();
  if (vm.count("seed")) {
    // Read here: program_options takes "-1" for an unsigned value and wraps it.
    uint64_t seed = 0;
    const std::string& text = vm["seed"].as<std::string>();
    if (text.empty() || text[0] == '-' || text[0] == '+' || !absl::SimpleAtoi(text, &seed))
      return absl::InvalidArgumentError(
          absl::StrCat("--seed: expected an integer from 0 to 2^64-1, got ", text));
    params.seed = seed;
  }
  params.ignore_eos = vm["ignore-eos"].as<bool>();
  params.top_logits = vm["top-logits"].as<int>();
  if (vm.count("logprobs")) {
    params.logprobs = true;
    params.top_logprobs = vm["logprobs"].as<int>();
  }
  params.repetition_penalty = vm["repetition-penalty"].as<float>();
  params.presence_penalty = vm["presence-penalty"].as<float>();
  params.frequency_penalty = vm["frequency-penalty"].as<float>();
  if (vm.count("stop")) params.stop = vm["stop"].as<std::vector<std::string>>();
  return params;
}

absl::StatusOr<GenerateRequest> ParseGenerateRequest(const json& line, const SamplingParams& defaults) {
  if (!line.is_object()) return absl::InvalidArgumentError("expected a JSON object");
  GenerateRequest request;
  auto prompt = ParsePrompt(line);
  if (!prompt.ok()) return prompt.status();
  request.prompt = *std::move(prompt);
  request.params = defaults;
  if (absl::Status status = ApplyOverrides(line, request.params); !status.ok()) return status;
  return request;
}

absl::StatusOr<std::vector<GenerateRequest>> ReadGenerateRequests(const std::string& path,
                                                                  const SamplingParams& defaults) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error))
    return absl::NotFoundError(absl::StrCat(path, ": not a file"));
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::vector<GenerateRequest> requests;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json value = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded())
      return absl::InvalidArgumentError(absl::StrCat(path, ":", number, ": not valid JSON"));
    auto request = ParseGenerateRequest(value, defaults);
    if (!request.ok())
      return absl::InvalidArgumentError(absl::StrCat(path, ":", number, ": ", request.status().message()));
    requests.push_back(*std::move(request));
  }
  return requests;
}

}  // namespace doze::cli

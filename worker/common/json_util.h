// JSON helpers for the files doze reads (config.json, tokenizer.json, safetensors headers): parse errors
// that say where, and values described in error messages without printing (or recursing through) all of them.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace doze {

// Parses `text` as one JSON object. Errors: "not valid JSON: <where and why>" or "not a JSON object".
absl::StatusOr<nlohmann::json> ParseJsonObject(std::string_view text);

// `value` for an error message: a scalar or a small flat array or object as JSON (at most ~80 characters),
// anything else by its kind and size ("an array of 3 items"). Never recurses into nested values.
std::string DescribeJson(const nlohmann::json& value);

}  // namespace doze

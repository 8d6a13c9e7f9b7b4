// The tokenizer_config.json that Qwen2.5-Instruct checkpoints ship, for directories written by make-model.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace doze {

// Qwen2.5-Instruct's Jinja chat template, byte for byte (2507 bytes).
std::string_view Qwen25ChatTemplate();

// Qwen2.5-Instruct's tokenizer_config.json: its added_tokens_decoder for ids 151643..151664, plus any added
// token of `tokenizer_json` (the tokenizer.json beside it) past those; `source` names that file in errors.
absl::StatusOr<std::string> Qwen25TokenizerConfigJson(std::string_view tokenizer_json,
                                                      std::string_view source);

}  // namespace doze

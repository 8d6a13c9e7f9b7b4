// Reads the parts of a Hugging Face tokenizer.json that doze's tokenizer implements, and rejects the rest, so
// a file that would tokenize differently fails at load rather than giving wrong ids.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "worker/tokenizer/added_vocabulary.h"

namespace doze {

// The contents of a supported tokenizer.json.
struct TokenizerJson {
  absl::flat_hash_map<std::string, int32_t> vocab;
  std::vector<std::pair<std::string, std::string>> merges;  // In rank order.
  std::vector<AddedToken> added_tokens;
  bool nfc = false;  // Whether the normalizer is NFC (otherwise there is none).
};

// Parses tokenizer.json text; errors name the offending key path.
absl::StatusOr<TokenizerJson> ParseTokenizerJson(std::string_view json_text);

}  // namespace doze

// A request's prompt in one of the three forms doze accepts, and how it becomes token ids.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/tokenizer/chat_template.h"
#include "worker/tokenizer/tokenizer.h"

namespace doze {

// Exactly one of the three is set.
struct PromptInput {
  std::optional<std::vector<int32_t>> token_ids;
  std::optional<std::string> text;
  std::optional<std::vector<ChatMessage>> messages;
};

// Turns a prompt into token ids: ids are checked against [0, vocab_size) (errors name `ids_field`[i]), text
// is encoded, messages are rendered with the chat template (generation prompt added) and encoded.
absl::StatusOr<std::vector<int32_t>> PromptTokenIds(const Tokenizer& tokenizer, int vocab_size,
                                                    const PromptInput& prompt, std::string_view ids_field);

// The tokenizer's ids must all be rows of the model's embedding (vocab_size): with a wider tokenizer, text
// would encode to ids the model cannot take. Errors name `tokenizer_path`.
absl::Status CheckTokenizerFitsVocab(const Tokenizer& tokenizer, int vocab_size,
                                     std::string_view tokenizer_path);

}  // namespace doze

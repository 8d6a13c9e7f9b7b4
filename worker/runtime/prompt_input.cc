#include "worker/runtime/prompt_input.h"

#include "absl/strings/str_cat.h"
#include "worker/common/status_macros.h"

namespace doze {

absl::StatusOr<std::vector<int32_t>> PromptTokenIds(const Tokenizer& tokenizer, int vocab_size,
                                                    const PromptInput& prompt, std::string_view ids_field) {
  int forms = prompt.token_ids.has_value() + prompt.text.has_value() + prompt.messages.has_value();
  if (forms != 1)
    return absl::InvalidArgumentError("prompt: give exactly one of token ids, text or messages");
  if (prompt.token_ids) {
    for (size_t i = 0; i < prompt.token_ids->size(); ++i) {
      const int32_t id = (*prompt.token_ids)[i];
      if (id < 0 || id >= vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(std::string(ids_field), "[", i, "]: ", id,
                                                       " is outside the vocabulary [0, ", vocab_size, ")"));
      }
    }
    return *prompt.token_ids;
  }
  if (prompt.text) return tokenizer.Encode(*prompt.text);
  return EncodeChatPrompt(tokenizer, *prompt.messages, /*add_generation_prompt=*/true);
}

absl::Status CheckTokenizerFitsVocab(const Tokenizer& tokenizer, int vocab_size,
                                     std::string_view tokenizer_path) {
  if (tokenizer.vocab_size() <= vocab_size) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(std::string(tokenizer_path), ": holds token ids up to ",
                                                 tokenizer.vocab_size() - 1, ", past the model's vocab_size ",
                                                 vocab_size, " (config.json)"));
}

}  // namespace doze

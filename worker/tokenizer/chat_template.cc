#include "worker/tokenizer/chat_template.h"

#include "absl/strings/str_cat.h"

namespace doze {
namespace {

void AppendTurn(const std::string& role, const std::string& content, std::string* out) {
  absl::StrAppend(out, "<|im_start|>", role, "\n", content, "<|im_end|>\n");
}

}  // namespace

absl::StatusOr<std::string> RenderChatPrompt(const std::vector<ChatMessage>& messages,
                                             bool add_generation_prompt) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant") {
      return absl::InvalidArgumentError(
          absl::StrCat("messages[", i, "].role: \"", role, "\" is not one of system, user, assistant"));
    }
  }
  std::string prompt;
  // The template's first branch: a leading system message is used as is, otherwise the default one is written
  // (also for an empty conversation). A system message later on is rendered like any other turn.
  if (messages.empty() || messages[0].role != "system")
    AppendTurn("system", std::string(kQwenDefaultSystemPrompt), &prompt);
  for (const ChatMessage& message : messages) AppendTurn(message.role, message.content, &prompt);
  if (add_generation_prompt) prompt.append("<|im_start|>assistant\n");
  return prompt;
}

}  // namespace doze

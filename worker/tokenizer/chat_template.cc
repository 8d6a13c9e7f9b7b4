#include "worker/tokenizer/chat_template.h"

#include "absl/strings/str_cat.h"

namespace doze {
namespace {

constexpr char kImStart[] = "<|im_start|>";
constexpr char kImEnd[] = "<|im_end|>";

// A piece of the rendered prompt: one of the template's special tokens, or text.
struct ChatPiece {
  bool special;
  std::string text;
};

// `<|im_start|>{role}\n{content}<|im_end|>\n` as pieces.
void AppendTurn(const std::string& role, const std::string& content, std::vector<ChatPiece>* pieces) {
  pieces->push_back({true, kImStart});
  pieces->push_back({false, absl::StrCat(role, "\n", content)});
  pieces->push_back({true, kImEnd});
  pieces->push_back({false, "\n"});
}

// The template's output as pieces; InvalidArgument for a role it does not take.
absl::StatusOr<std::vector<ChatPiece>> RenderPieces(const std::vector<ChatMessage>& messages,
                                                    bool add_generation_prompt) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant") {
      return absl::InvalidArgumentError(
          absl::StrCat("messages[", i, "].role: \"", role, "\" is not one of system, user, assistant"));
    }
  }
  std::vector<ChatPiece> pieces;
  // The template's first branch: a leading system message is used as is, otherwise the default one is written
  // (also for an empty conversation). A system message later on is rendered like any other turn.
  if (messages.empty() || messages[0].role != "system")
    AppendTurn("system", std::string(kQwenDefaultSystemPrompt), &pieces);
  for (const ChatMessage& message : messages) AppendTurn(message.role, message.content, &pieces);
  if (add_generation_prompt) {
    pieces.push_back({true, kImStart});
    pieces.push_back({false, "assistant\n"});
  }
  return pieces;
}

}  // namespace

absl::StatusOr<std::string> RenderChatPrompt(const std::vector<ChatMessage>& messages,
                                             bool add_generation_prompt) {
  absl::StatusOr<std::vector<ChatPiece>> pieces = RenderPieces(messages, add_generation_prompt);
  if (!pieces.ok()) return pieces.status();
  std::string prompt;
  for (const ChatPiece& piece : *pieces) prompt.append(piece.text);
  return prompt;
}

absl::StatusOr<std::vector<int32_t>> EncodeChatPrompt(const Tokenizer& tokenizer,
                                                      const std::vector<ChatMessage>& messages,
                                                      bool add_generation_prompt) {
  absl::StatusOr<std::vector<ChatPiece>> pieces = RenderPieces(messages, add_generation_prompt);
  if (!pieces.ok()) return pieces.status();
  std::vector<int32_t> ids;
  for (const ChatPiece& piece : *pieces) {
    if (piece.special) {
      std::optional<int32_t> id = tokenizer.TokenToId(piece.text);
      if (!id.has_value())
        return absl::FailedPreconditionError(absl::StrCat("the tokenizer has no ", piece.text, " token"));
      ids.push_back(*id);
      continue;
    }
    absl::StatusOr<std::vector<int32_t>> text = tokenizer.Encode(piece.text, SpecialTokens::kAsText);
    if (!text.ok()) return text.status();
    ids.insert(ids.end(), text->begin(), text->end());
  }
  return ids;
}

}  // namespace doze

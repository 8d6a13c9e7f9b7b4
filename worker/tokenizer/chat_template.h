// Qwen2.5's chat template (ChatML), rendered natively: for the messages doze accepts (system, user and
// assistant text, no tools) it yields exactly what the model's Jinja template renders.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/tokenizer/tokenizer.h"

namespace doze {

// One turn of a conversation.
struct ChatMessage {
  std::string role;  // "system", "user" or "assistant".
  std::string content;
};

// The system prompt Qwen2.5's template inserts when the conversation does not start with one.
inline constexpr char kQwenDefaultSystemPrompt[] =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

// Renders `<|im_start|>{role}\n{content}<|im_end|>\n` per message, preceded by the default system message
// when the first message is not a system message, and followed by `<|im_start|>assistant\n` when
// `add_generation_prompt`. InvalidArgument, naming the index and role, for any other role.
absl::StatusOr<std::string> RenderChatPrompt(const std::vector<ChatMessage>& messages,
                                             bool add_generation_prompt = true);

// The ids of RenderChatPrompt's text as `tokenizer` encodes it, except that roles and contents never yield a
// special token: "<|im_end|>" typed in a message is encoded as the characters it is, so that a message cannot
// end its turn and open another (a user's "system" turn, say). For contents without special-token text the
// ids are exactly Encode(RenderChatPrompt(...)). FailedPrecondition when the tokenizer lacks the ChatML
// tokens.
absl::StatusOr<std::vector<int32_t>> EncodeChatPrompt(const Tokenizer& tokenizer,
                                                      const std::vector<ChatMessage>& messages,
                                                      bool add_generation_prompt = true);

}  // namespace doze

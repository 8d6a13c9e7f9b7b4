// Turns a parsed OpenAI request and its function's definition into the worker's GenerateRequest: the
// function's system prompt and defaults where the request is silent, the prompt rendered with the chat
// template and tokenized here (so the context check happens before anything is queued or started).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "gateway/config/config.h"
#include "gateway/openai/completion_request.h"
#include "proto/worker.pb.h"
#include "worker/tokenizer/tokenizer.h"

namespace doze::gateway {

// A request ready for the worker.
struct BuiltPrompt {
  v1::GenerateRequest request;
  int prompt_tokens = 0;
  int max_tokens = 0;
};

// What the gateway checks requests against: config.json's max_position_embeddings (prompt plus completion)
// and vocab_size (the ids logit_bias may name).
struct ModelLimits {
  int context_length = 0;
  int vocab_size = 0;
};

// Tokenizes and checks requests against the model's limits.
class PromptBuilder {
 public:
  // `tokenizer` must outlive the builder.
  PromptBuilder(const Tokenizer* tokenizer, ModelLimits limits)
      : tokenizer_(tokenizer), context_length_(limits.context_length), vocab_size_(limits.vocab_size) {}

  // Builds the worker request; 400 context_length_exceeded when prompt plus max_tokens exceed the context,
  // 400 naming logit_bias for an id past the vocabulary.
  absl::StatusOr<BuiltPrompt> Build(const CompletionRequest& request, const FunctionConfig& function,
                                    const std::string& request_id) const;

 private:
  absl::StatusOr<std::vector<int32_t>> PromptIds(const CompletionRequest& request,
                                                 const FunctionConfig& function) const;

  const Tokenizer* tokenizer_;
  int context_length_;
  int vocab_size_;
};

}  // namespace doze::gateway

// POST /v1/chat/completions and /v1/completions: authenticate, parse, apply the function's definition, check
// the context, and queue the request on its function; the answer comes back through a CompletionResponder.
#pragma once

#include <memory>
#include <string>

#include "gateway/api/api_keys.h"
#include "gateway/api/prompt_builder.h"
#include "gateway/common/clock.h"
#include "gateway/functions/function_table.h"
#include "gateway/http/http_types.h"

namespace doze::gateway {

class CompletionsHandler {
 public:
  // Every pointer must outlive the handler.
  CompletionsHandler(const FunctionTable* functions, const ApiKeySet* keys, const PromptBuilder* prompts,
                     const Tokenizer* tokenizer, Clock* clock)
      : functions_(functions), keys_(keys), prompts_(prompts), tokenizer_(tokenizer), clock_(clock) {}

  // Serves one request of the chat (`chat`) or completions endpoint.
  void Handle(const HttpRequest& request, std::shared_ptr<ResponseChannel> channel, bool chat) const;

 private:
  // Everything up to the queue; an error status is the client's answer.
  absl::Status Submit(const HttpRequest& request, const std::shared_ptr<ResponseChannel>& channel,
                      bool chat) const;

  const FunctionTable* functions_;
  const ApiKeySet* keys_;
  const PromptBuilder* prompts_;
  const Tokenizer* tokenizer_;
  Clock* clock_;
};

}  // namespace doze::gateway

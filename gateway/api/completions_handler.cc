#include "gateway/api/completions_handler.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gateway/api/completion_responder.h"
#include "gateway/openai/api_error.h"
#include "gateway/openai/completion_request.h"
#include "worker/common/status_macros.h"

namespace doze::gateway {
namespace {

// A request id unique within this gateway's life: the start time and a counter.
std::string NextRequestId(bool chat, absl::Time now) {
  static std::atomic<uint64_t> counter{0};
  static const int64_t epoch = absl::ToUnixMicros(now);
  return absl::StrFormat("%s-%x%06x", chat ? "chatcmpl" : "cmpl", epoch, counter.fetch_add(1));
}

// A client's name as an error message echoes it: at most 64 bytes, cut at a UTF-8 character's start and
// marked "...", so that the response stays small.
std::string EchoedName(absl::string_view name) {
  if (name.size() <= 64) return std::string(name);
  size_t cut = 64;
  while (cut > 0 && (static_cast<unsigned char>(name[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat(name.substr(0, cut), "...");
}

}  // namespace

void CompletionsHandler::Handle(const HttpRequest& request, std::shared_ptr<ResponseChannel> channel,
                                bool chat) const {
  absl::Status status = Submit(request, channel, chat);
  if (!status.ok()) channel->Send(ErrorResponse(status));
}

absl::Status CompletionsHandler::Submit(const HttpRequest& request,
                                        const std::shared_ptr<ResponseChannel>& channel, bool chat) const {
  RETURN_IF_ERROR(keys_->Check(request.authorization));
  absl::StatusOr<CompletionRequest> parsed_or = ParseCompletionRequest(request.body, chat);
  if (!parsed_or.ok()) {
    // Counted under the function the body names, if it names one.
    std::shared_ptr<FunctionRuntime> named = functions_->Find(RequestedModel(request.body));
    if (named != nullptr) named->metrics().CountRequest(HttpStatusOf(parsed_or.status()));
    return parsed_or.status();
  }
  CompletionRequest parsed = *std::move(parsed_or);
  std::shared_ptr<FunctionRuntime> function = functions_->Find(parsed.model);
  if (function == nullptr) {
    return WithCode(WithParam(absl::NotFoundError(absl::StrCat("The model `", EchoedName(parsed.model),
                                                               "` does not exist: it names no function")),
                              "model"),
                    "model_not_found");
  }
  const absl::Time now = clock_->Now();
  std::string id = NextRequestId(chat, now);
  absl::StatusOr<BuiltPrompt> built = prompts_->Build(parsed, *function->config(), id);
  if (!built.ok()) {
    function->metrics().CountRequest(HttpStatusOf(built.status()));
    return built.status();
  }
  CompletionIdentity identity{chat, id, parsed.model, absl::ToUnixSeconds(now),
                              parsed.stream && parsed.include_usage};
  auto sink = std::make_shared<CompletionResponder>(channel, CompletionFormatter(identity, tokenizer_),
                                                    parsed.stream, parsed.include_usage);
  auto pending = std::make_shared<PendingRequest>(parsed.model, std::move(built->request), sink, now);
  // The dispatcher counts what it refuses (queue full, archived, closed) itself.
  RETURN_IF_ERROR(function->dispatcher().Submit(pending));
  channel->OnClientGone([pending] { pending->Cancel(); });
  return absl::OkStatus();
}

}  // namespace doze::gateway

// The sink of one completion request: turns the worker's responses into the client's SSE stream or into one
// JSON body, and errors into an HTTP error (before the stream started) or an SSE error event (after).
#pragma once

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "gateway/dispatch/pending_request.h"
#include "gateway/http/http_types.h"
#include "gateway/openai/completion_format.h"

namespace doze::gateway {

class CompletionResponder : public GenerationSink {
 public:
  CompletionResponder(std::shared_ptr<ResponseChannel> channel, CompletionFormatter formatter, bool stream,
                      bool include_usage);

  void OnResponse(const v1::GenerateResponse& response) override;
  void OnError(const absl::Status& status) override;
  bool streams() const override { return stream_; }
  void Restart() override;
  bool answer_started() const override;

 private:
  void StreamResponse(const v1::GenerateResponse& response) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<ResponseChannel> channel_;
  const CompletionFormatter formatter_;
  const bool stream_;
  const bool include_usage_;
  mutable absl::Mutex mu_;
  bool stream_started_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::string text_ ABSL_GUARDED_BY(mu_);
  nlohmann::json logprobs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace doze::gateway

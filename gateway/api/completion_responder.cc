#include "gateway/api/completion_responder.h"

#include "gateway/openai/api_error.h"

namespace doze::gateway {

CompletionResponder::CompletionResponder(std::shared_ptr<ResponseChannel> channel,
                                         CompletionFormatter formatter, bool stream, bool include_usage)
    : channel_(std::move(channel)),
      formatter_(std::move(formatter)),
      stream_(stream),
      include_usage_(include_usage) {}

void CompletionResponder::OnResponse(const v1::GenerateResponse& response) {
  absl::MutexLock lock(&mu_);
  if (done_) return;
  bool last = response.finish_reason() != v1::FINISH_REASON_UNSPECIFIED;
  if (stream_) return StreamResponse(response);
  text_ += response.text_delta();
  nlohmann::json logprobs = formatter_.Logprobs(response);
  if (!logprobs.is_null()) {
    if (logprobs_.is_null()) {
      logprobs_ = std::move(logprobs);
    } else {
      for (auto& [key, values] : logprobs.items()) {
        for (auto& value : values) logprobs_[key].push_back(std::move(value));
      }
    }
  }
  if (!last) return;
  done_ = true;
  channel_->Send(MakeResponse(200, formatter_.WholeResponse(text_, logprobs_, response)));
}

void CompletionResponder::StreamResponse(const v1::GenerateResponse& response) {
  std::string events;
  if (!stream_started_) {
    stream_started_ = true;
    channel_->StartStream("text/event-stream");
    events += formatter_.RoleEvent();
  }
  if (!response.text_delta().empty() || response.logprobs_size() > 0)
    events += formatter_.DeltaEvent(response);
  if (response.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
    done_ = true;
    events += formatter_.FinishEvent(response);
    if (include_usage_) events += formatter_.UsageEvent(response.usage());
    events += CompletionFormatter::DoneEvent();
  }
  if (done_) return channel_->WriteLast(std::move(events));
  channel_->Write(std::move(events));
}

void CompletionResponder::Restart() {
  absl::MutexLock lock(&mu_);
  text_.clear();
  logprobs_ = nullptr;
  formatter_.RestartTextOffsets();
}

bool CompletionResponder::answer_started() const {
  absl::MutexLock lock(&mu_);
  return stream_started_;
}

void CompletionResponder::OnError(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  if (done_) return;
  done_ = true;
  if (!stream_started_) return channel_->Send(ErrorResponse(status));
  channel_->WriteLast(CompletionFormatter::ErrorEvent(ErrorJson(status)));
}

}  // namespace doze::gateway

#include "worker/service/generate_call.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "worker/service/proto_convert.h"

namespace doze::service {
namespace {

double MillisBetween(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

GenerateCall::GenerateCall(const GenerateDeps& deps, const v1::GenerateRequest& request) : deps_(deps) {
  absl::Status status = deps_.lifecycle->Admit();
  admitted_by_lifecycle_ = status.ok();
  if (status.ok()) status = Submit(request);
  if (!status.ok()) {
    finish_started_ = true;
    Finish(ToGrpcStatus(status));
  }
}

absl::Status GenerateCall::Submit(const v1::GenerateRequest& request) {
  absl::StatusOr<ParsedRequest> parsed = ParseGenerateRequest(request);
  if (!parsed.ok()) return parsed.status();
  if (absl::Status status = parsed->params.Validate(deps_.loop->vocab_size()); !status.ok()) return status;
  absl::StatusOr<std::vector<int32_t>> ids = deps_.model->PromptTokenIds(parsed->prompt);
  if (!ids.ok()) return absl::InvalidArgumentError(ids.status().message());
  if (ids->empty()) return absl::InvalidArgumentError("prompt: encodes to no tokens");
  const int64_t total = static_cast<int64_t>(ids->size()) + parsed->params.max_tokens;
  if (total > deps_.loop->max_model_len()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_tokens: the prompt (", ids->size(), " tokens) + max_tokens (", parsed->params.max_tokens,
        ") = ", total, " tokens exceeds the context of ", deps_.loop->max_model_len()));
  }
  // From here the engine thread holds a reference until Release; it may call back before Submit returns.
  refs_.fetch_add(1);
  handle_ = deps_.loop->Submit(
      EngineRequest{*std::move(ids), std::move(parsed->params), request.request_id(), this});
  return absl::OkStatus();
}

void GenerateCall::OnAdmitted() {
  std::lock_guard<std::mutex> lock(mu_);
  admitted_at_ = Clock::now();
}

void GenerateCall::OnOutput(RequestOutput output) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!first_token_at_ && !output.new_token_ids.empty()) first_token_at_ = Clock::now();
    if (finish_started_ || cancelled_) return;
    pending_.push_back(std::move(output));
  }
  Pump();
}

void GenerateCall::OnError(absl::Status status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = ToGrpcStatus(status);
  }
  Pump();
}

void GenerateCall::Release() { Unref(); }

void GenerateCall::OnWriteDone(bool ok) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    // A failed write means the client is gone: stop generating for it.
    if (!ok) cancelled_ = true;
  }
  if (!ok && handle_ != 0) deps_.loop->Cancel(handle_);
  Pump();
}

void GenerateCall::OnCancel() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
  }
  if (handle_ != 0) deps_.loop->Cancel(handle_);
  Pump();
}

void GenerateCall::OnDone() {
  if (admitted_by_lifecycle_) deps_.lifecycle->Leave();
  Unref();
}

void GenerateCall::Pump() {
  enum class Action { kNone, kWrite, kWriteAndFinish, kFinish } action = Action::kNone;
  grpc::Status status;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (writing_ || finish_started_) return;
    if (cancelled_) {
      action = Action::kFinish;
      status = grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled");
    } else if (error_) {
      action = Action::kFinish;
      status = *error_;
    } else if (!pending_.empty()) {
      response_.Clear();
      for (const RequestOutput& output : pending_) AppendOutput(output, &response_);
      const bool last = pending_.back().finished;
      pending_.clear();
      if (last) FillTimings(response_.mutable_timings());
      action = last ? Action::kWriteAndFinish : Action::kWrite;
    }
    if (action == Action::kNone) return;
    writing_ = action != Action::kFinish;
    finish_started_ = action != Action::kWrite;
  }
  // Started outside the lock: a reaction may run on another thread at once and take it.
  if (action == Action::kWrite) StartWrite(&response_);
  if (action == Action::kWriteAndFinish)
    StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
  if (action == Action::kFinish) Finish(status);
}

void GenerateCall::FillTimings(v1::Timings* timings) const {
  const Clock::time_point now = Clock::now();
  timings->set_queue_wait_ms(MillisBetween(arrival_, admitted_at_.value_or(arrival_)));
  timings->set_time_to_first_token_ms(MillisBetween(arrival_, first_token_at_.value_or(now)));
  timings->set_total_ms(MillisBetween(arrival_, now));
}

void GenerateCall::Unref() {
  if (refs_.fetch_sub(1) == 1) delete this;
}

}  // namespace doze::service

#include "worker/service/generate_work.h"

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

GenerateWork::GenerateWork(const GenerateDeps& deps, Host* host) : deps_(deps), host_(host) {}

bool GenerateWork::Start(const v1::GenerateRequest& request) {
  absl::Status status = deps_.lifecycle->Admit();
  admitted_by_lifecycle_ = status.ok();
  if (status.ok()) status = Submit(request);
  if (status.ok()) return true;
  std::lock_guard<std::mutex> lock(mu_);
  error_ = ToGrpcStatus(status);
  return false;
}

absl::Status GenerateWork::Submit(const v1::GenerateRequest& request) {
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
  handle_ = deps_.loop->Submit(
      EngineRequest{*std::move(ids), std::move(parsed->params), request.request_id(), this});
  return absl::OkStatus();
}

GenerateWork::Taken GenerateWork::Take(v1::GenerateResponse* response) {
  Taken taken;
  std::lock_guard<std::mutex> lock(mu_);
  if (status_taken_) return taken;
  if (cancelled_) {
    taken.status = grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled");
  } else if (error_) {
    taken.status = *error_;
  } else if (!pending_.empty()) {
    response->Clear();
    for (const RequestOutput& output : pending_) AppendOutput(output, response);
    const bool last = pending_.back().finished;
    pending_.clear();
    if (last) {
      FillTimings(response->mutable_timings());
      taken.status = grpc::Status::OK;
    }
    taken.has_response = true;
  }
  status_taken_ = taken.status.has_value();
  return taken;
}

void GenerateWork::Cancel() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (status_taken_) return;
    cancelled_ = true;
  }
  if (handle_ != 0) deps_.loop->Cancel(handle_);
}

void GenerateWork::Leave() {
  if (admitted_by_lifecycle_) deps_.lifecycle->Leave();
  admitted_by_lifecycle_ = false;
}

void GenerateWork::OnAdmitted() {
  std::lock_guard<std::mutex> lock(mu_);
  admitted_at_ = Clock::now();
}

void GenerateWork::OnOutput(RequestOutput output) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!first_token_at_ && !output.new_token_ids.empty()) first_token_at_ = Clock::now();
    if (status_taken_ || cancelled_) return;
    pending_.push_back(std::move(output));
  }
  host_->OnPending();
}

void GenerateWork::OnStepEnd() { host_->OnReady(); }

void GenerateWork::OnError(absl::Status status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = ToGrpcStatus(status);
  }
  host_->OnPending();
  host_->OnReady();
}

void GenerateWork::Release() { host_->OnReleased(); }

void GenerateWork::FillTimings(v1::Timings* timings) const {
  const Clock::time_point now = Clock::now();
  timings->set_queue_wait_ms(MillisBetween(arrival_, admitted_at_.value_or(arrival_)));
  timings->set_time_to_first_token_ms(MillisBetween(arrival_, first_token_at_.value_or(now)));
  timings->set_total_ms(MillisBetween(arrival_, now));
}

}  // namespace doze::service

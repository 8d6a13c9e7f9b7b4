#include "worker/service/generate_call.h"

namespace doze::service {

GenerateCall::GenerateCall(const GenerateDeps& deps, const v1::GenerateRequest& request) : work_(deps, this) {
  if (!work_.Start(request)) Unref();  // the engine never held it
  Pump();
}

void GenerateCall::OnWriteDone(bool ok) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
  }
  // A failed write means the client is gone: stop generating for it.
  if (!ok) work_.Cancel();
  Pump();
}

void GenerateCall::OnCancel() {
  work_.Cancel();
  Pump();
}

void GenerateCall::OnDone() {
  work_.Leave();
  Unref();
}

void GenerateCall::Pump() {
  enum class Action { kNone, kWrite, kWriteAndFinish, kFinish } action = Action::kNone;
  grpc::Status status;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (writing_ || finish_started_) return;
    GenerateWork::Taken taken = work_.Take(&response_);
    if (taken.status) status = *taken.status;
    if (taken.has_response) {
      action = taken.status ? Action::kWriteAndFinish : Action::kWrite;
    } else if (taken.status) {
      action = Action::kFinish;
    }
    if (action == Action::kNone) return;
    writing_ = action != Action::kFinish;
    finish_started_ = action != Action::kWrite;
  }
  // Started outside the lock: a reaction may run on another thread at once and take it.
  if (action == Action::kWrite) StartWrite(&response_);
  if (action == Action::kWriteAndFinish) StartWriteAndFinish(&response_, grpc::WriteOptions(), status);
  if (action == Action::kFinish) Finish(status);
}

void GenerateCall::Unref() {
  if (refs_.fetch_sub(1) == 1) delete this;
}

}  // namespace doze::service

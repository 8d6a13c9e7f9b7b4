#include "worker/service/generate_stream_call.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace doze::service {

// One call of the stream: the host of its GenerateWork. Freed once the stream has closed it and the engine
// has released the work; holds a reference on the stream until then.
class GenerateStreamCall::Call final : private GenerateWork::Host {
 public:
  Call(GenerateStreamCall* stream, uint64_t id, const GenerateDeps& deps)
      : stream_(stream), id_(id), work_(deps, this) {}

  // Admits, checks and submits the request; false when it was refused (its status waits to be taken).
  bool Start(const v1::GenerateRequest& request) {
    if (work_.Start(request)) return true;
    Unref();  // the engine never held it
    return false;
  }
  // The stream is done with the call: its final status was sent, or the client is gone.
  void Close() {
    work_.Leave();
    Unref();
  }
  GenerateWork& work() { return work_; }
  uint64_t id() const { return id_; }

  // Guarded by the stream's mutex.
  bool queued = false;  // in the stream's ready_
  bool ended = false;   // its final status was taken

 private:
  void OnPending() override { stream_->OnCallPending(this); }
  void OnReady() override { stream_->Pump(); }
  void OnReleased() override { Unref(); }
  void Unref() {
    if (refs_.fetch_sub(1) != 1) return;
    GenerateStreamCall* stream = stream_;
    delete this;
    stream->Unref();
  }

  GenerateStreamCall* const stream_;
  const uint64_t id_;
  GenerateWork work_;
  std::atomic<int> refs_{2};  // the stream's (until Close) and the engine's (until OnReleased)
};

GenerateStreamCall::GenerateStreamCall(std::function<GenerateDeps()> deps) : deps_(std::move(deps)) {
  StartRead(&request_);
}

void GenerateStreamCall::OnReadDone(bool ok) {
  if (!ok) {
    // Half-closed by the client (or the stream broke): no more commands, so every open call is cancelled.
    {
      std::lock_guard<std::mutex> lock(mu_);
      reads_done_ = true;
    }
    CancelAll();
    Pump();
    return;
  }
  for (const v1::StreamCommand& command : request_.commands()) Execute(command);
  StartRead(&request_);
}

void GenerateStreamCall::Execute(const v1::StreamCommand& command) {
  switch (command.action_case()) {
    case v1::StreamCommand::kStart:
      return StartCall(command.call_id(), command.start());
    case v1::StreamCommand::kCancel:
      return CancelCall(command.call_id());
    case v1::StreamCommand::ACTION_NOT_SET:
      return;
  }
}

void GenerateStreamCall::StartCall(uint64_t id, const v1::GenerateRequest& request) {
  auto* call = new Call(this, id, deps_());
  bool duplicate = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (broken_) {
      delete call;  // the client is gone
      return;
    }
    if (calls_.contains(id)) {
      // A client that reuses an open id could not tell the two calls' events apart: a protocol error.
      duplicate = true;
      broken_ = true;
      protocol_error_ = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                     absl::StrCat("call_id ", id, " is already open on this stream"));
    } else {
      refs_.fetch_add(1);
      calls_[id] = call;
    }
  }
  if (duplicate) {
    delete call;
    CancelAll();
    return Pump();
  }
  // A refused call has its status to send now; an admitted one speaks after the engine's steps.
  if (!call->Start(request)) {
    OnCallPending(call);
    Pump();
  }
}

void GenerateStreamCall::CancelCall(uint64_t id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = calls_.find(id);
    if (it == calls_.end()) return;  // ended already
    it->second->work().Cancel();
    EnqueueLocked(it->second);
  }
  Pump();
}

void GenerateStreamCall::CancelAll() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, call] : calls_) {
    call->work().Cancel();
    EnqueueLocked(call);
  }
}

void GenerateStreamCall::OnCallPending(Call* call) {
  std::lock_guard<std::mutex> lock(mu_);
  // An ended call may still be held by the engine (an abort reported after its status went out).
  if (!call->ended) EnqueueLocked(call);
}

void GenerateStreamCall::EnqueueLocked(Call* call) {
  if (call->queued) return;
  call->queued = true;
  ready_.push_back(call);
}

void GenerateStreamCall::OnWriteDone(bool ok) {
  std::vector<Call*> ended;
  {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    ended = std::exchange(ending_, {});
    // A failed write means the client is gone: stop generating for it.
    if (!ok) broken_ = true;
  }
  for (Call* call : ended) call->Close();
  if (!ok) CancelAll();
  Pump();
}

void GenerateStreamCall::OnCancel() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    broken_ = true;
  }
  CancelAll();
  Pump();
}

void GenerateStreamCall::OnDone() { Unref(); }

void GenerateStreamCall::Pump() {
  enum class Action { kNone, kWrite, kFinish } action = Action::kNone;
  grpc::Status status;
  std::vector<Call*> ended;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (writing_ || finish_started_) return;
    CollectLocked(ended);
    if (!broken_ && response_.events_size() > 0) {
      action = Action::kWrite;
      writing_ = true;
      ending_ = std::exchange(ended, {});
    } else if (calls_.empty() && (reads_done_ || broken_)) {
      action = Action::kFinish;
      finish_started_ = true;
      status = protocol_error_.value_or(broken_ ? grpc::Status::CANCELLED : grpc::Status::OK);
    }
  }
  // Calls whose status cannot go out (the client is gone) close here.
  for (Call* call : ended) call->Close();
  // Started outside the lock: a reaction may run on another thread at once and take it.
  if (action == Action::kWrite) StartWrite(&response_);
  if (action == Action::kFinish) Finish(status);
}

void GenerateStreamCall::CollectLocked(std::vector<Call*>& ended) {
  response_.Clear();
  for (Call* call : std::exchange(ready_, {})) {
    call->queued = false;
    v1::CallEvent* event = response_.add_events();
    GenerateWork::Taken taken = call->work().Take(event->mutable_response());
    if (!taken.has_response) event->clear_response();
    if (taken.status) {
      event->mutable_status()->set_code(taken.status->error_code());
      event->mutable_status()->set_message(taken.status->error_message());
      call->ended = true;
      calls_.erase(call->id());
      ended.push_back(call);
    }
    if (!taken.has_response && !taken.status) {
      response_.mutable_events()->RemoveLast();
    } else {
      event->set_call_id(call->id());
    }
  }
}

void GenerateStreamCall::Unref() {
  if (refs_.fetch_sub(1) == 1) delete this;
}

}  // namespace doze::service

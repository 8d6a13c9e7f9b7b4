#include "gateway/workers/completion_thread.h"

#include <pthread.h>

#include "gateway/common/busy_poll.h"

namespace doze::gateway {

namespace {

std::vector<std::unique_ptr<DeliveryLane>> MakeLanes(int n) {
  std::vector<std::unique_ptr<DeliveryLane>> lanes;
  for (int i = 0; i < n; ++i) lanes.push_back(std::make_unique<DeliveryLane>());
  return lanes;
}

}  // namespace

CompletionThread::CompletionThread(absl::Duration busy_poll, int lanes)
    : lanes_(MakeLanes(lanes)), thread_([this, busy_poll] { Loop(busy_poll); }) {
  pthread_setname_np(thread_.native_handle(), "doze-grpc");
}

CompletionThread::~CompletionThread() {
  absl::MutexLock lock(&mu_);
  auto released = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return held_ == 0; };
  if (!mu_.AwaitWithTimeout(absl::Condition(&released), absl::Seconds(5))) {
    thread_.detach();
    for (auto& lane : lanes_) lane.release();  // left to the process's exit with the thread that posts to it
    return;
  }
  cq_->Shutdown();
  if (mu_.AwaitWithTimeout(absl::Condition(&exited_), absl::Seconds(5))) {
    thread_.join();
    delete cq_;
  } else {
    thread_.detach();
    for (auto& lane : lanes_) lane.release();
  }
}

void CompletionThread::Hold() {
  absl::MutexLock lock(&mu_);
  ++held_;
}

void CompletionThread::Release() {
  absl::MutexLock lock(&mu_);
  --held_;
}

void CompletionThread::Loop(absl::Duration busy_poll) {
  BusyPoll poll(busy_poll);
  void* tag = nullptr;
  bool ok = false;
  bool polling = false;
  for (;;) {
    // A deadline already past makes AsyncNext poll the sockets once without blocking.
    grpc::CompletionQueue::NextStatus status =
        polling ? cq_->AsyncNext(&tag, &ok, gpr_inf_past(GPR_CLOCK_MONOTONIC))
                : (cq_->Next(&tag, &ok) ? grpc::CompletionQueue::GOT_EVENT : grpc::CompletionQueue::SHUTDOWN);
    if (status == grpc::CompletionQueue::SHUTDOWN) break;
    if (status == grpc::CompletionQueue::GOT_EVENT) {
      static_cast<CompletionTag*>(tag)->run(ok);
      poll.OnEvent();
      polling = poll.enabled();
    } else {
      polling = poll.KeepPolling();
    }
  }
  absl::MutexLock lock(&mu_);
  exited_ = true;
}

}  // namespace doze::gateway

#include "gateway/workers/completion_thread.h"

#include <pthread.h>

namespace doze::gateway {

CompletionThread::CompletionThread() : thread_([this] { Loop(); }) {
  pthread_setname_np(thread_.native_handle(), "doze-grpc");
}

CompletionThread::~CompletionThread() {
  absl::MutexLock lock(&mu_);
  auto released = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return held_ == 0; };
  if (!mu_.AwaitWithTimeout(absl::Condition(&released), absl::Seconds(5))) {
    thread_.detach();
    return;
  }
  cq_->Shutdown();
  if (mu_.AwaitWithTimeout(absl::Condition(&exited_), absl::Seconds(5))) {
    thread_.join();
    delete cq_;
  } else {
    thread_.detach();
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

void CompletionThread::Loop() {
  void* tag = nullptr;
  bool ok = false;
  while (cq_->Next(&tag, &ok)) static_cast<CompletionTag*>(tag)->run(ok);
  absl::MutexLock lock(&mu_);
  exited_ = true;
}

}  // namespace doze::gateway

#include "gateway/dispatch/function_queue.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace doze::gateway {

absl::Status FunctionQueue::Push(std::shared_ptr<PendingRequest> request) {
  absl::MutexLock lock(&mu_);
  if (static_cast<int>(queue_.size()) >= max_size_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the queue of ", request->function(), " is full (", max_size_, " requests waiting)"));
  }
  queue_.push_back(std::move(request));
  return absl::OkStatus();
}

void FunctionQueue::PushFront(std::shared_ptr<PendingRequest> request) {
  absl::MutexLock lock(&mu_);
  queue_.push_front(std::move(request));
}

std::shared_ptr<PendingRequest> FunctionQueue::Pop() {
  absl::MutexLock lock(&mu_);
  if (queue_.empty()) return nullptr;
  std::shared_ptr<PendingRequest> request = std::move(queue_.front());
  queue_.pop_front();
  return request;
}

bool FunctionQueue::Remove(const PendingRequest* request) {
  absl::MutexLock lock(&mu_);
  auto it =
      std::find_if(queue_.begin(), queue_.end(), [&](const auto& queued) { return queued.get() == request; });
  if (it == queue_.end()) return false;
  queue_.erase(it);
  return true;
}

bool FunctionQueue::Contains(const PendingRequest* request) const {
  absl::MutexLock lock(&mu_);
  return std::any_of(queue_.begin(), queue_.end(),
                     [&](const auto& queued) { return queued.get() == request; });
}

std::deque<std::shared_ptr<PendingRequest>> FunctionQueue::TakeAll() {
  absl::MutexLock lock(&mu_);
  return std::exchange(queue_, {});
}

int FunctionQueue::size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

void FunctionQueue::set_max_size(int max_size) {
  absl::MutexLock lock(&mu_);
  max_size_ = max_size;
}

}  // namespace doze::gateway

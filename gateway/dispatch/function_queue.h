// The bounded FIFO of one function's requests waiting for its worker. Thread-safe.
#pragma once

#include <deque>
#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "gateway/dispatch/pending_request.h"

namespace doze::gateway {

class FunctionQueue {
 public:
  explicit FunctionQueue(int max_size) : max_size_(max_size) {}

  // Appends `request`; ResourceExhausted when the queue already holds max_size requests.
  absl::Status Push(std::shared_ptr<PendingRequest> request);

  // Puts `request` first (a retry), whatever the size.
  void PushFront(std::shared_ptr<PendingRequest> request);

  // Removes and returns the oldest request, or nullptr when empty.
  std::shared_ptr<PendingRequest> Pop();

  // Removes `request` if it is still queued; returns whether it was.
  bool Remove(const PendingRequest* request);

  // Returns whether `request` is queued.
  bool Contains(const PendingRequest* request) const;

  // Removes and returns every queued request.
  std::deque<std::shared_ptr<PendingRequest>> TakeAll();

  // Returns the number of queued requests.
  int size() const;

  // Changes the bound (configuration reload); requests already queued stay.
  void set_max_size(int max_size);

 private:
  mutable absl::Mutex mu_;
  int max_size_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<PendingRequest>> queue_ ABSL_GUARDED_BY(mu_);
};

}  // namespace doze::gateway

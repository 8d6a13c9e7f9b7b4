// One generation request between its arrival and its end: the message for the worker, where its output goes,
// and its cancellation. Shared by the HTTP side, the function's queue and the worker call.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/worker.pb.h"

namespace doze::gateway {

// Receives a request's output; called from gRPC or Asio threads, never concurrently for one request.
class GenerationSink {
 public:
  virtual ~GenerationSink() = default;

  // One response of the worker's stream (text delta, or the last one with finish_reason and usage).
  virtual void OnResponse(const v1::GenerateResponse& response) = 0;

  // The request ended without finishing; `status` says why (its HTTP status is derived from it).
  virtual void OnError(const absl::Status& status) = 0;

  // Whether each response goes out to the client as it comes (a stream), rather than at the end.
  virtual bool streams() const { return false; }

  // Whether the client already has the response's status line (a stream's 200 and its headers): an error
  // can then only end the stream with an error event.
  virtual bool answer_started() const { return false; }

  // The request is tried again on a worker: what the broken call's responses left behind (a sink that does
  // not stream holds them until the end) is dropped.
  virtual void Restart() {}
};

// A request waiting for, or running on, its function's worker.
class PendingRequest {
 public:
  PendingRequest(std::string function, v1::GenerateRequest request, std::shared_ptr<GenerationSink> sink,
                 absl::Time arrival)
      : function_(std::move(function)),
        request_(std::move(request)),
        sink_(std::move(sink)),
        arrival_(arrival) {}

  // Returns the function's name.
  const std::string& function() const { return function_; }

  // Returns the message sent to the worker.
  const v1::GenerateRequest& request() const { return request_; }

  // Returns where the output goes.
  GenerationSink* sink() const { return sink_.get(); }

  // Returns when the request arrived.
  absl::Time arrival() const { return arrival_; }

  // Marks the request cancelled (its client left) and runs the cancel hook, if any, once.
  void Cancel() {
    std::function<void()> hook;
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return;
      cancelled_ = true;
      hook = std::move(cancel_hook_);
    }
    if (hook) hook();
  }

  // Returns whether the client left.
  bool cancelled() const {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }

  // Sets what cancels the request where it is now (its worker call); runs it at once when already cancelled.
  void SetCancelHook(std::function<void()> hook) {
    {
      absl::MutexLock lock(&mu_);
      if (!cancelled_) {
        cancel_hook_ = std::move(hook);
        return;
      }
    }
    if (hook) hook();
  }

  // Drops the cancel hook (its call has ended), so that a later Cancel does not reach an ended call. The hook
  // holds its call weakly (Dispatcher), so no reference cycle depends on this.
  void ClearCancelHook() {
    std::function<void()> hook;
    absl::MutexLock lock(&mu_);
    hook = std::move(cancel_hook_);  // Destroyed after the lock is released.
  }

  // Counts the worker calls made for this request (a request whose client has seen no output is retried
  // once).
  int attempts() const { return attempts_.load(); }
  void AddAttempt() { attempts_.fetch_add(1); }

  // Whether any output reached the client (only a streamed request's does before it ends).
  bool started() const { return started_.load(); }
  void MarkStarted() { started_.store(true); }

  // True for the first response of all the request's calls (time to first token counts it once).
  // (A plain load first: every later response of a stream passes here.)
  bool TakeFirstResponse() {
    return !first_response_seen_.load(std::memory_order_relaxed) && !first_response_seen_.exchange(true);
  }

  // When the request left the queue for a worker (for the queue wait histogram).
  absl::Time dispatched() const { return dispatched_; }
  void set_dispatched(absl::Time time) { dispatched_ = time; }

 private:
  const std::string function_;
  const v1::GenerateRequest request_;
  const std::shared_ptr<GenerationSink> sink_;
  const absl::Time arrival_;
  absl::Time dispatched_ = absl::InfinitePast();
  std::atomic<int> attempts_{0};
  std::atomic<bool> started_{false};
  std::atomic<bool> first_response_seen_{false};
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> cancel_hook_ ABSL_GUARDED_BY(mu_);
};

}  // namespace doze::gateway

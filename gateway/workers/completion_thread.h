// A thread that drives one gRPC completion queue, and the tags its events carry.
#pragma once

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gateway/workers/delivery_lane.h"
#include "grpcpp/grpcpp.h"

namespace doze::gateway {

// What a completion queue event points to: the code that handles the operation's completion.
struct CompletionTag {
  std::function<void(bool ok)> run;
};

// Takes events off its own completion queue and runs their tags. gRPC polls the sockets of the calls on this
// queue from this thread (no other), so a worker's response is read and handled on one thread. With a
// `busy_poll` window the thread polls the queue (and so the sockets) for that long after each event before it
// blocks (gateway/common/busy_poll.h).
// `lanes` more threads (DeliveryLane) take a share of what a completion hands to observers (CallStream).
class CompletionThread {
 public:
  explicit CompletionThread(absl::Duration busy_poll = absl::ZeroDuration(), int lanes = 0);
  // Waits a few seconds for the held calls to let go, shuts the queue down and waits a few seconds for the
  // calls still open to end; past either wait the thread and the queue are left to the process's exit rather
  // than blocking it.
  ~CompletionThread();

  grpc::CompletionQueue* cq() { return cq_; }

  // A call that will start more operations later (a GenerateStream's finish comes once its reads end) holds
  // the queue open: an operation started on a queue already shut down is a fatal error in gRPC.
  void Hold();
  void Release();

  // The delivery lanes besides this thread (0 when it hands everything out itself).
  int num_lanes() const { return static_cast<int>(lanes_.size()); }
  DeliveryLane& lane(int i) { return *lanes_[i]; }

 private:
  void Loop(absl::Duration busy_poll);

  grpc::CompletionQueue* const cq_ = new grpc::CompletionQueue();
  absl::Mutex mu_;
  bool exited_ ABSL_GUARDED_BY(mu_) = false;
  int held_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::unique_ptr<DeliveryLane>> lanes_;
  std::thread thread_;  // last: it starts once the members it uses exist
};

}  // namespace doze::gateway

// One GenerateStream to a worker, carrying many Generate calls: the gateway's side of the multiplexed RPC.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "gateway/workers/completion_thread.h"
#include "gateway/workers/worker_client.h"
#include "grpcpp/grpcpp.h"
#include "proto/worker.grpc.pb.h"

namespace doze::gateway {

// A worker writes one message per engine step for all the calls of a stream, so a burst of tokens costs
// the gateway one gRPC read instead of one per call. Starts and cancels from any thread go through a write
// queue (one write in flight, gRPC's rule; what piles up meanwhile leaves in the next one); the worker's
// events are handed to the calls' observers on the completion thread, each call's OnDone exactly once: with
// the worker's final status, or UNAVAILABLE for every call still open when the stream breaks. With delivery
// lanes on the completion thread, a burst's events (a message with kMinEventsToSplit or more) go to lane
// i % (lanes + 1) for call i (0: the completion thread itself), each lane in order, so one message's events
// are written on several threads at once; a smaller message is written by the completion thread alone (a
// hand-off would cost more than it saves) wherever the calls' lanes have nothing pending. A broken
// stream takes no more calls (CallStream::accepting); the owner opens another. Keeps itself alive until
// gRPC is done with it.
class CallStream : public std::enable_shared_from_this<CallStream> {
 public:
  // Events a message needs before delivery lanes take a share: a lane's thread is woken for each hand-off
  // (tens of microseconds on a virtual machine) and an event costs ~12 us of loopback TCP to write, so fewer
  // events are written sooner by the completion thread alone (bench/gateway_load.md, nineteenth session).
  static constexpr int kMinEventsToSplit = 8;

  // Opens a stream on `stub`'s channel, its events on `thread`'s queue, which it holds open until it ends.
  static std::shared_ptr<CallStream> Open(v1::Worker::Stub* stub, CompletionThread* thread);

  // Starts a call on the stream; the call keeps itself alive until its observer's OnDone. On a stream that
  // has already ended, OnDone(UNAVAILABLE) comes before this returns.
  std::shared_ptr<GenerateCall> Start(const v1::GenerateRequest& request,
                                      std::shared_ptr<GenerateObserver> observer);
  // Whether the stream is still up (a stream that has broken takes calls only to fail them).
  bool accepting() const;
  // Cancels the whole stream: the worker cancels its calls, which end here with UNAVAILABLE.
  void Cancel();

 private:
  class Call;

  CallStream() = default;
  void Connect(v1::Worker::Stub* stub, CompletionThread* thread);
  // Asks the worker to cancel one call (Call::Cancel).
  void CancelCall(uint64_t id);
  // Queues a command; whether a write may start now (the caller starts it after the lock, StartWrite).
  bool QueueLocked(v1::StreamCommand command) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the queued commands into the write buffer when a write may start; whether it may.
  bool NextWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartWrite();
  void OnRead(bool ok);
  void OnWritten(bool ok);
  void OnFinished();
  using Delivery = std::pair<std::shared_ptr<Call>, const v1::CallEvent*>;
  // Hands one message's events to their calls' observers.
  void Deliver();
  // Call `id`'s lane: 0, the completion thread, or delivery lane LaneOf(id) - 1.
  int LaneOf(uint64_t id) const;
  // Whether lane `lane` (as LaneOf) has nothing pending: work for its calls may run on the completion thread.
  bool LaneIdle(int lane) const;
  // Runs `work` for call `id` on its lane, or now on the completion thread when the lane is idle.
  void OnLane(uint64_t id, std::function<void()> work);
  static void DeliverEach(const std::vector<Delivery>& deliveries,
                          std::chrono::steady_clock::time_point read_at);
  void StartFinish();
  void ReleaseOne();

  CompletionThread* thread_ = nullptr;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<v1::GenerateStreamRequest, v1::GenerateStreamResponse>>
      stream_;
  // The read in flight; a fresh message for each read where delivery lanes may still hold the last one.
  std::shared_ptr<v1::GenerateStreamResponse> response_ = std::make_shared<v1::GenerateStreamResponse>();
  v1::GenerateStreamRequest outgoing_;  // the write in flight
  grpc::Status status_;                 // the stream's, once finished
  std::shared_ptr<CallStream> self_;    // until both the start and the finish have completed
  std::atomic<int> pending_{2};         // the start and the finish
  // The start sends the stream's header with gRPC's write operation: it counts as the first write.
  CompletionTag started_{[this](bool ok) {
    OnWritten(ok);
    ReleaseOne();
  }};
  CompletionTag read_{[this](bool ok) { OnRead(ok); }};
  CompletionTag written_{[this](bool ok) { OnWritten(ok); }};
  CompletionTag finished_{[this](bool) { OnFinished(); }};
  std::vector<std::vector<Delivery>> deliveries_;  // completion thread only: one list a lane
  std::vector<char> lane_idle_;                    // completion thread only: Deliver's snapshot

  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, std::shared_ptr<Call>> calls_ ABSL_GUARDED_BY(mu_);  // open
  std::atomic<uint64_t> next_id_{1};
  v1::GenerateStreamRequest queued_ ABSL_GUARDED_BY(mu_);  // commands waiting for the next write
  bool writing_ ABSL_GUARDED_BY(mu_) = true;               // the start first
  bool write_failed_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_over_ ABSL_GUARDED_BY(mu_) = false;  // the worker's side has ended: the stream is broken
  bool ended_ ABSL_GUARDED_BY(mu_) = false;       // finished, its open calls told
};

}  // namespace doze::gateway

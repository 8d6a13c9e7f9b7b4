// The gateway's view of one worker process: its RPCs, asynchronous, with callbacks on gRPC's threads.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/worker.pb.h"

namespace doze::gateway {

// Receives one Generate stream.
class GenerateObserver {
 public:
  virtual ~GenerateObserver() = default;

  // One message of the stream; `read_at`: when the worker's message that carried it was read (one read may
  // carry several calls' responses, handed to their observers in turn).
  virtual void OnResponse(const v1::GenerateResponse& response,
                          std::chrono::steady_clock::time_point read_at) = 0;

  // The stream ended; OK after the last response, else the call's error.
  virtual void OnDone(const absl::Status& status) = 0;
};

// A Generate call in progress. It keeps itself alive until its observer's OnDone, so callers may hold it
// weakly.
class GenerateCall {
 public:
  virtual ~GenerateCall() = default;

  // Cancels the call (the worker aborts the request); OnDone still follows.
  virtual void Cancel() = 0;
};

// A connection to one worker.
class WorkerClient {
 public:
  virtual ~WorkerClient() = default;

  // Asks grpc.health.v1.Health/Check; `done` gets whether the worker answered SERVING.
  virtual void CheckHealth(absl::Duration timeout, std::function<void(bool serving)> done) = 0;

  // Starts a Generate stream delivered to `observer`.
  virtual std::shared_ptr<GenerateCall> Generate(const v1::GenerateRequest& request,
                                                 std::shared_ptr<GenerateObserver> observer) = 0;

  // Worker/Stats.
  virtual void Stats(absl::Duration timeout, std::function<void(absl::StatusOr<v1::StatsResponse>)> done) = 0;

  // Worker/Sleep, Worker/Wake and Worker/Drain.
  virtual void Sleep(absl::Duration timeout, std::function<void(absl::Status)> done) = 0;
  virtual void Wake(absl::Duration timeout, std::function<void(absl::Status)> done) = 0;
  virtual void Drain(absl::Duration timeout, std::function<void(absl::Status)> done) = 0;
};

// Whether `weak` names `client`, compared by owner: no reference is taken, so none is dropped (and no client
// destroyed) under the caller's lock, and a client made since at the same address is another worker.
inline bool SameWorker(const std::weak_ptr<WorkerClient>& weak, const std::shared_ptr<WorkerClient>& client) {
  return client != nullptr && !weak.owner_before(client) && !client.owner_before(weak);
}

// Makes clients for worker addresses ("unix:/tmp/doze/f.sock"); a seam for tests.
class WorkerClientFactory {
 public:
  virtual ~WorkerClientFactory() = default;

  // Returns a client for the worker listening at `address`.
  virtual std::shared_ptr<WorkerClient> Connect(const std::string& address) = 0;
};

}  // namespace doze::gateway

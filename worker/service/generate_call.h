// One Generate call: a gRPC server-streaming reactor that is also the engine's sink for its request.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <optional>

#include "proto/worker.grpc.pb.h"
#include "worker/service/engine_loop.h"
#include "worker/service/request_sink.h"
#include "worker/service/worker_lifecycle.h"
#include "worker/service/worker_model.h"

namespace doze::service {

// What a Generate call needs from the worker. `loop` and `model` are set before the lifecycle admits calls.
struct GenerateDeps {
  WorkerLifecycle* lifecycle = nullptr;
  EngineLoop* loop = nullptr;
  const WorkerModel* model = nullptr;
};

// gRPC threads check and tokenize the request and write responses; the engine thread hands outputs over
// through OnOutput, which starts a write when none is in flight (outputs that pile up meanwhile travel
// together in the next one). Deletes itself once gRPC is done with it (OnDone) and the engine has released
// it.
class GenerateCall : public grpc::ServerWriteReactor<v1::GenerateResponse>, public RequestSink {
 public:
  // Admits, checks and submits the request; a refused one is finished at once with its status.
  GenerateCall(const GenerateDeps& deps, const v1::GenerateRequest& request);

  void OnAdmitted() override;
  void OnOutput(RequestOutput output) override;
  void OnError(absl::Status status) override;
  void Release() override;

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  using Clock = std::chrono::steady_clock;

  // Checks and tokenizes the request and hands it to the engine thread.
  absl::Status Submit(const v1::GenerateRequest& request);
  // Starts the next write or the finish when nothing is in flight; takes the lock itself.
  void Pump();
  void FillTimings(v1::Timings* timings) const;
  void Unref();

  GenerateDeps deps_;
  const Clock::time_point arrival_ = Clock::now();
  bool admitted_by_lifecycle_ = false;
  uint64_t handle_ = 0;
  std::atomic<int> refs_{1};

  std::mutex mu_;
  std::deque<RequestOutput> pending_;
  std::optional<grpc::Status> error_;
  bool writing_ = false;
  bool finish_started_ = false;
  bool cancelled_ = false;
  std::optional<Clock::time_point> admitted_at_;
  std::optional<Clock::time_point> first_token_at_;
  v1::GenerateResponse response_;  // owned by the write in flight while writing_
};

// absl status to gRPC status (the codes share their numbers).
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace doze::service

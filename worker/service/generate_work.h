// One request's way through the worker, whichever RPC carries it (Generate, or one call of a GenerateStream):
// its admission by the lifecycle, the checks and tokenization, the engine's outputs gathered until the RPC
// takes them, the timings, and the final status.
#pragma once

#include <grpcpp/grpcpp.h>

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

// The engine thread hands outputs over (RequestSink); the RPC takes them with Take, merged into one response,
// when its host says they are ready (after each step, so that one step's outputs travel together). A member
// of its host, which must outlive the engine's reference (until Host::OnReleased when Start returned true).
// Thread-safe.
class GenerateWork : public RequestSink {
 public:
  // The RPC side of one call.
  class Host {
   public:
    // Something now waits to be taken (an output, or the call's end); more of the same step may follow. On
    // the engine thread; no lock of the work is held.
    virtual void OnPending() = 0;
    // Take what waits: the step's outputs for every request have been handed over, or the call has ended.
    // On the engine thread; no lock of the work is held.
    virtual void OnReady() = 0;
    // The engine holds no more references to the work.
    virtual void OnReleased() = 0;

   protected:
    ~Host() = default;
  };

  // What Take found.
  struct Taken {
    bool has_response = false;           // the response was filled
    std::optional<grpc::Status> status;  // the call is over with this status (after the response, if any)
  };

  GenerateWork(const GenerateDeps& deps, Host* host);

  // Admits, checks and submits the request. True: the engine holds the work until Host::OnReleased (it may
  // call back before Start returns). False: the call is over already (Take gives its status).
  bool Start(const v1::GenerateRequest& request);
  // Moves the outputs gathered so far into `response` (cleared first) and, once the call is over, gives its
  // final status, once: Generate's status for the same request. An error or cancellation drops the outputs
  // not yet taken, as Generate does.
  Taken Take(v1::GenerateResponse* response);
  // The client cancelled or is gone: the engine aborts the request and the call ends with CANCELLED (the
  // caller takes it).
  void Cancel();
  // The RPC is done with the call (its status was sent, or the client is gone): it no longer counts as open
  // in the lifecycle. Once.
  void Leave();

  // RequestSink, on the engine thread.
  void OnAdmitted() override;
  void OnOutput(RequestOutput output) override;
  void OnStepEnd() override;
  void OnError(absl::Status status) override;
  void Release() override;

 private:
  using Clock = std::chrono::steady_clock;

  // Checks and tokenizes the request and hands it to the engine thread.
  absl::Status Submit(const v1::GenerateRequest& request);
  void FillTimings(v1::Timings* timings) const;

  GenerateDeps deps_;
  Host* const host_;
  const Clock::time_point arrival_ = Clock::now();
  bool admitted_by_lifecycle_ = false;
  uint64_t handle_ = 0;  // set before the engine can call back; 0 when not submitted

  std::mutex mu_;
  std::deque<RequestOutput> pending_;
  std::optional<grpc::Status> error_;
  bool cancelled_ = false;
  bool status_taken_ = false;
  std::optional<Clock::time_point> admitted_at_;
  std::optional<Clock::time_point> first_token_at_;
};

// absl status to gRPC status (the codes share their numbers).
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace doze::service

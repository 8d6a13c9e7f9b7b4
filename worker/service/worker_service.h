// The doze.v1.Worker gRPC service over one worker's lifecycle and engine loop.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <mutex>
#include <string>

#include "proto/worker.grpc.pb.h"
#include "worker/service/engine_loop.h"
#include "worker/service/generate_call.h"
#include "worker/service/generate_stream_call.h"
#include "worker/service/startup_timeline.h"
#include "worker/service/worker_lifecycle.h"
#include "worker/service/worker_model.h"

namespace doze::service {

// What Stats says about the worker besides its counters.
struct WorkerInfo {
  std::string function;
  std::string model_dir;
  std::string backend;
};

// Callback API: no handler blocks a gRPC thread. Generate calls stream through GenerateCall, GenerateStream
// through GenerateStreamCall; Sleep, Wake and
// Drain answer from the engine thread or from the end of the last open call.
class WorkerService final : public v1::Worker::CallbackService {
 public:
  // `on_drained` runs once a drain has finished (the process then shuts down); every pointer must outlive
  // the server.
  WorkerService(WorkerLifecycle* lifecycle, const StartupTimeline* timeline,
                std::function<void()> on_drained);

  // Loading is over: calls go to `loop` and `model` (before the lifecycle admits any).
  void SetModel(EngineLoop* loop, const WorkerModel* model, WorkerInfo info);

  // Streams one request's outputs.
  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(grpc::CallbackServerContext* context,
                                                           const v1::GenerateRequest* request) override;
  // Streams the outputs of many requests, started and cancelled on the stream.
  grpc::ServerBidiReactor<v1::GenerateStreamRequest, v1::GenerateStreamResponse>* GenerateStream(
      grpc::CallbackServerContext* context) override;
  // Counters, KV usage, start-up timeline and state.
  grpc::ServerUnaryReactor* Stats(grpc::CallbackServerContext* context, const v1::StatsRequest* request,
                                  v1::StatsResponse* response) override;
  // Waits for the open calls to end, then the engine sleeps.
  grpc::ServerUnaryReactor* Sleep(grpc::CallbackServerContext* context, const v1::SleepRequest* request,
                                  v1::SleepResponse* response) override;
  // Wakes the engine.
  grpc::ServerUnaryReactor* Wake(grpc::CallbackServerContext* context, const v1::WakeRequest* request,
                                 v1::WakeResponse* response) override;
  // Stops admitting, waits for the open calls to end, answers, then the process exits.
  grpc::ServerUnaryReactor* Drain(grpc::CallbackServerContext* context, const v1::DrainRequest* request,
                                  v1::DrainResponse* response) override;

 private:
  GenerateDeps deps() const;

  WorkerLifecycle* lifecycle_;
  const StartupTimeline* timeline_;
  std::function<void()> on_drained_;
  mutable std::mutex mu_;
  EngineLoop* loop_ = nullptr;
  const WorkerModel* model_ = nullptr;
  WorkerInfo info_;
};

}  // namespace doze::service

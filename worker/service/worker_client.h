// A blocking client of one worker: Generate streams, Stats, Sleep, Wake, Drain and the health check. Used by
// `doze client`, `doze bench-cold` and the tests. Thread-safe (gRPC stubs are).
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "proto/health.grpc.pb.h"
#include "proto/worker.grpc.pb.h"

namespace doze::service {

class WorkerClient {
 public:
  // `target`: unix:PATH or HOST:PORT.
  explicit WorkerClient(const std::string& target);

  // Runs one Generate call to its end, handing each response to `on_response` as it arrives. `timeout` sets
  // the call's deadline; `context`, when given, lets another thread cancel it (TryCancel).
  grpc::Status Generate(const v1::GenerateRequest& request,
                        const std::function<void(const v1::GenerateResponse&)>& on_response,
                        std::optional<std::chrono::milliseconds> timeout = std::nullopt,
                        grpc::ClientContext* context = nullptr);
  // The worker's Stats.
  grpc::Status Stats(v1::StatsResponse* response);
  // Puts the worker to sleep.
  grpc::Status Sleep(v1::SleepResponse* response);
  // Wakes the worker.
  grpc::Status Wake(v1::WakeResponse* response);
  // Drains the worker (it exits afterwards).
  grpc::Status Drain(v1::DrainResponse* response);
  // The health status of `service` ("" for the whole worker): "SERVING", "NOT_SERVING", "UNKNOWN" or
  // "SERVICE_UNKNOWN"; the call's error otherwise.
  grpc::Status Health(std::string* status, const std::string& service = "");
  // Watches the health status until it says SERVING or `timeout` passes; whether it did.
  bool WaitForServing(std::chrono::milliseconds timeout);
  // Watches the health status from the moment the worker listens, handing each status ("SERVING", ...) to
  // `on_status` until it returns false or `timeout` passes.
  void WatchHealth(const std::function<bool(const std::string&)>& on_status,
                   std::chrono::milliseconds timeout);

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Worker::Stub> worker_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace doze::service

// One Generate call: a gRPC server-streaming reactor over one GenerateWork.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <mutex>

#include "proto/worker.grpc.pb.h"
#include "worker/service/generate_work.h"

namespace doze::service {

// gRPC threads check and tokenize the request and write responses; after each engine step the work says it
// has outputs, and a write starts when none is in flight (outputs that pile up meanwhile travel together in
// the next one). Deletes itself once gRPC is done with it (OnDone) and the engine has released the work.
class GenerateCall : public grpc::ServerWriteReactor<v1::GenerateResponse>, private GenerateWork::Host {
 public:
  // Admits, checks and submits the request; a refused one is finished at once with its status.
  GenerateCall(const GenerateDeps& deps, const v1::GenerateRequest& request);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  void OnPending() override {}
  void OnReady() override { Pump(); }
  void OnReleased() override { Unref(); }
  // Starts the next write or the finish when nothing is in flight; takes the lock itself.
  void Pump();
  void Unref();

  GenerateWork work_;
  std::atomic<int> refs_{2};  // gRPC's (until OnDone) and the engine's (until OnReleased)

  std::mutex mu_;
  bool writing_ = false;
  bool finish_started_ = false;
  v1::GenerateResponse response_;  // owned by the write in flight while writing_
};

}  // namespace doze::service

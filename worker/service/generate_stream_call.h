// One GenerateStream: many Generate calls multiplexed on one bidirectional gRPC stream.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "proto/worker.grpc.pb.h"
#include "worker/service/generate_work.h"

namespace doze::service {

// Reads the client's commands on gRPC's threads (a start is checked and tokenized there, as Generate does)
// and writes the calls' events: each call of the stream with an output in an engine step is marked as the
// engine hands the step over, and at the step's end one write carries all of them; what piles up while a
// write is in flight travels in the next one (gRPC allows one write in flight). A call counts as open in the
// lifecycle until the write that carries its final status is done, so that a drain answers only after the
// last status has left. Deletes itself once gRPC is done with it (OnDone) and every call's work has been
// released by the engine.
class GenerateStreamCall
    : public grpc::ServerBidiReactor<v1::GenerateStreamRequest, v1::GenerateStreamResponse> {
 public:
  // `deps` is asked at each start (the model arrives after the worker starts listening).
  explicit GenerateStreamCall(std::function<GenerateDeps()> deps);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  class Call;

  void Execute(const v1::StreamCommand& command);
  void StartCall(uint64_t id, const v1::GenerateRequest& request);
  void CancelCall(uint64_t id);
  // The client is gone or has half-closed: every open call is cancelled.
  void CancelAll();
  // Puts an open call on the ready list once.
  void EnqueueLocked(Call* call);
  // A call has something to send (on the engine thread while it hands a step's outputs over, or a gRPC
  // thread after a refused start); the next Pump takes it.
  void OnCallPending(Call* call);
  // Starts the next write, or the finish once no call is open and no more commands can come.
  void Pump();
  // Moves what the ready calls have into response_; the calls whose status it holds go to `ended`.
  void CollectLocked(std::vector<Call*>& ended);
  void Unref();

  const std::function<GenerateDeps()> deps_;
  std::atomic<int> refs_{1};           // gRPC's (until OnDone) and one for each Call alive
  v1::GenerateStreamRequest request_;  // the read in flight

  std::mutex mu_;
  absl::flat_hash_map<uint64_t, Call*> calls_;  // open: their final status not yet taken
  std::vector<Call*> ready_;                    // open calls with something to take, each once
  std::vector<Call*> ending_;                   // final status in the write in flight
  bool reads_done_ = false;                     // no more commands will come
  bool broken_ = false;                         // the client is gone: nothing more is written
  bool writing_ = false;
  bool finish_started_ = false;
  std::optional<grpc::Status> protocol_error_;  // the stream's status when the client broke the protocol
  v1::GenerateStreamResponse response_;         // owned by the write in flight while writing_
};

}  // namespace doze::service

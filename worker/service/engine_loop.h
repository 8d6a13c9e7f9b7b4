// The engine thread: the one thread that owns the Engine, runs its steps and touches the device.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/engine/engine.h"
#include "worker/engine/model_runner.h"
#include "worker/engine/sampling_params.h"
#include "worker/service/request_sink.h"
#include "worker/service/step_watchdog.h"

namespace doze::service {

// A request on its way to the engine thread.
struct EngineRequest {
  std::vector<int32_t> prompt_token_ids;
  SamplingParams params;
  std::string request_id;
  RequestSink* sink = nullptr;  // kept until its Release
};

// What the engine thread needs from the loaded model: the runner (for Sleep/Wake) and a way to build an
// engine over it (again after each wake, so that no prefix cached before a sleep survives it).
struct EngineParts {
  ModelRunner* runner = nullptr;
  std::function<std::unique_ptr<Engine>()> make_engine;
};

// Runs on the engine thread before anything else: creates the device context and loads the model.
using EngineInit = std::function<absl::StatusOr<EngineParts>()>;

// Totals since start (across the engines rebuilt after wakes) and the current queue and KV state.
struct EngineStats {
  EngineCounters counters;
  int64_t num_requests = 0;  // admitted by the engine
  int64_t num_aborted = 0;   // ended by an abort
};

// Other threads hand requests, cancellations and sleep/wake commands over through a mutex-guarded inbox; the
// engine thread sleeps on a condition variable while it has nothing to do. Thread-safe.
class EngineLoop {
 public:
  using Done = std::function<void(absl::Status)>;

  EngineLoop() = default;
  ~EngineLoop();
  EngineLoop(const EngineLoop&) = delete;
  EngineLoop& operator=(const EngineLoop&) = delete;

  // Has `watchdog` (which must outlive the loop) told of the start and end of every turn of the engine thread
  // after the warm-up (what it does between two waits for work: admissions, a step, the outputs' hand-over,
  // sleep, wake). Call before Start.
  void set_step_watchdog(StepWatchdog* watchdog) { step_watchdog_ = watchdog; }
  // Starts the engine thread, runs `init` there, then one warm-up step; returns once that is done (the
  // error of `init` otherwise, the thread then gone).
  absl::Status Start(EngineInit init);
  // Queues a request for the next step and returns its handle for Cancel.
  uint64_t Submit(EngineRequest request);
  // Aborts the request at the next step and frees its KV blocks; a finished or unknown handle is ignored.
  void Cancel(uint64_t handle);
  // Once the engine is idle: the runner sleeps and the engine is dropped. `done` runs on the engine thread.
  void Sleep(Done done);
  // The runner wakes and a fresh engine is built. `done` runs on the engine thread.
  void Wake(Done done);
  // The state published after the latest step.
  EngineStats stats() const;
  // Longest prompt + max_tokens accepted; valid after Start.
  int max_model_len() const { return max_model_len_; }
  // The model's vocabulary size; valid after Start.
  int vocab_size() const { return vocab_size_; }
  // Stops the engine thread; requests still held get UNAVAILABLE. Idempotent.
  void Stop();

 private:
  enum class CommandKind { kSleep, kWake };
  struct Command {
    CommandKind kind;
    Done done;
  };
  struct Inbox {
    std::vector<std::pair<uint64_t, EngineRequest>> requests;
    std::vector<uint64_t> cancels;
    std::vector<Command> commands;
  };
  struct Admitted {
    uint64_t handle = 0;
    RequestSink* sink = nullptr;
  };

  void Run();
  absl::Status Initialize(EngineInit& init);
  void WarmUp();
  void Admit(std::vector<std::pair<uint64_t, EngineRequest>>& requests);
  void ApplyCancels(const std::vector<uint64_t>& handles);
  void Dispatch(std::vector<RequestOutput> outputs);
  void RunCommand(Command& command);
  void ReleaseAll();
  EngineStats CurrentStats() const;
  // Makes the current stats what stats() returns.
  void Publish();

  // Guards everything below up to the engine-thread-only block.
  mutable std::mutex mu_;
  std::condition_variable wake_up_;
  Inbox inbox_;
  bool stop_ = false;
  uint64_t next_handle_ = 1;
  EngineStats published_;

  std::thread thread_;
  StepWatchdog* step_watchdog_ = nullptr;  // set before the thread starts
  int max_model_len_ = 0;
  int vocab_size_ = 0;

  // Engine thread only.
  EngineParts parts_;
  std::unique_ptr<Engine> engine_;
  std::vector<Command> deferred_commands_;  // wait for the engine to be idle
  absl::flat_hash_map<uint64_t, uint64_t> engine_id_of_handle_;
  absl::flat_hash_map<uint64_t, Admitted> admitted_;  // by engine id
  EngineCounters retired_;                            // totals of the engines dropped at sleeps
  int64_t num_requests_ = 0;
  int64_t num_aborted_ = 0;
  std::vector<RequestSink*> stepped_, finished_;  // Dispatch's, cleared after each step
};

}  // namespace doze::service

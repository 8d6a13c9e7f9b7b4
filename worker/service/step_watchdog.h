// Watches the engine thread's steps from a thread of its own. A step that never ends (a kernel that hangs on
// the device, a deadlock) would leave the worker SERVING with every call frozen; past the timeout the
// watchdog calls its `on_stall` once (the worker logs and exits, and the gateway restarts it, as after a CUDA
// error).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/time/time.h"

namespace doze::service {

class StepWatchdog {
 public:
  using Callback = std::function<void(absl::Duration running)>;

  explicit StepWatchdog(Callback on_stall);
  ~StepWatchdog();
  StepWatchdog(const StepWatchdog&) = delete;
  StepWatchdog& operator=(const StepWatchdog&) = delete;

  // Starts watching: a step running longer than `timeout` is a stall. A zero or negative timeout never
  // starts. Call at most once.
  void Arm(absl::Duration timeout);

  // Marks the start and the end of one step (the engine thread).
  void StepStarted();
  void StepEnded();

 private:
  void Watch(absl::Duration timeout);

  const Callback on_stall_;
  std::atomic<int64_t> step_started_ns_{0};  // steady clock; 0 between steps
  std::mutex mu_;
  std::condition_variable stop_requested_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace doze::service

// Watches the engine thread's turns from a thread of its own. A turn is what the engine thread does between
// two waits for work: taking requests in, one step, handing the step's outputs to their calls, a sleep or a
// wake. A turn that never ends (a kernel that hangs on the device, a wake whose copies never finish, a call
// that blocks the thread, a deadlock) would leave the worker SERVING with every call frozen; past the timeout
// the watchdog calls its `on_stall` once (the worker logs and exits, and the gateway restarts it, as after a
// CUDA error).
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

  // Starts watching: a turn running longer than `timeout` is a stall. A zero or negative timeout never
  // starts. Call at most once.
  void Arm(absl::Duration timeout);

  // Marks the start and the end of one turn (the engine thread).
  void TurnStarted();
  void TurnEnded();

 private:
  void Watch(absl::Duration timeout);

  const Callback on_stall_;
  std::atomic<int64_t> turn_started_ns_{0};  // steady clock; 0 while the engine thread waits for work
  std::mutex mu_;
  std::condition_variable stop_requested_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace doze::service

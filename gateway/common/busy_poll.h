// Polling an event source for a while after its last event instead of blocking at once.
#pragma once

#include <chrono>

#include "absl/time/time.h"

namespace doze::gateway {

// Keeps a thread polling its event source (an Asio loop, a gRPC completion queue) for `window` after its last
// event, so that the next event of a busy period is taken without a wake-up: a blocked thread's wake-up costs
// tens to hundreds of microseconds at the tail on some hosts. An idle thread still sleeps, since the window
// opens only at an event. A zero window turns polling off. Not thread-safe: one per thread.
class BusyPoll {
 public:
  explicit BusyPoll(absl::Duration window) : window_(absl::ToChronoNanoseconds(window)) {}

  bool enabled() const { return window_.count() > 0; }

  // Notes that the thread has just handled an event: the window starts again (no clock read when off).
  void OnEvent() {
    if (enabled()) last_event_ = std::chrono::steady_clock::now();
  }

  // Returns whether the thread should poll again rather than block. Gives the core to any other runnable
  // thread first, so that pollers sharing a core do not hold each other's events back.
  bool KeepPolling();

 private:
  const std::chrono::nanoseconds window_;
  std::chrono::steady_clock::time_point last_event_{};
};

}  // namespace doze::gateway

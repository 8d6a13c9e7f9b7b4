#include "worker/service/step_watchdog.h"

#include <algorithm>
#include <chrono>
#include <utility>

namespace doze::service {
namespace {

int64_t SteadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

StepWatchdog::StepWatchdog(Callback on_stall) : on_stall_(std::move(on_stall)) {}

StepWatchdog::~StepWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  stop_requested_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void StepWatchdog::Arm(absl::Duration timeout) {
  if (timeout <= absl::ZeroDuration() || thread_.joinable()) return;
  thread_ = std::thread([this, timeout] { Watch(timeout); });
}

void StepWatchdog::TurnStarted() { turn_started_ns_.store(std::max<int64_t>(SteadyNanos(), 1)); }

void StepWatchdog::TurnEnded() { turn_started_ns_.store(0); }

void StepWatchdog::Watch(absl::Duration timeout) {
  // A stall is seen within a quarter of the timeout (at least a millisecond, at most a second) of passing it.
  const auto period =
      absl::ToChronoNanoseconds(std::clamp(timeout / 4, absl::Milliseconds(1), absl::Seconds(1)));
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_requested_.wait_for(lock, period, [this] { return stop_; })) {
    const int64_t started = turn_started_ns_.load();
    if (started == 0) continue;
    const absl::Duration running = absl::Nanoseconds(SteadyNanos() - started);
    if (running <= timeout) continue;
    lock.unlock();
    on_stall_(running);
    return;
  }
}

}  // namespace doze::service

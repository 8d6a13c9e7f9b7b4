// The worker's state (loading, serving, sleeping, draining) and the Generate calls open in it.
#pragma once

#include <functional>
#include <mutex>
#include <vector>

#include "absl/status/status.h"

namespace doze::service {

// The states Stats reports; health is SERVING exactly in kServing.
enum class WorkerState { kLoading, kServing, kSleeping, kDraining };

// Decides which calls are admitted and tells Sleep and Drain when the last open call has ended. Sleep and
// Wake are idempotent. Thread-safe; callbacks run outside its lock, on the thread that ended the last call
// or on the caller's.
class WorkerLifecycle {
 public:
  using Callback = std::function<void()>;

  // `set_serving` is told each time the health status flips (called under the lifecycle's lock, so the
  // flips arrive in order; it must not call back into the lifecycle).
  explicit WorkerLifecycle(std::function<void(bool serving)> set_serving);

  // The state as Stats reports it (entering sleep and waking count as sleeping).
  WorkerState state() const;
  // Generate calls admitted and not yet ended.
  int num_open_calls() const;
  // Loading is over: admit calls (unless a drain began meanwhile).
  void SetServing();
  // Admits one Generate call: OK, FailedPrecondition while sleeping, Unavailable while loading or draining.
  absl::Status Admit();
  // One admitted call has ended.
  void Leave();
  // Stops admitting; `on_idle` runs once no call is open; the caller then puts the engine to sleep and
  // reports with EndSleep. FailedPrecondition while a wake is under way, Unavailable while loading or
  // draining.
  absl::Status BeginSleep(Callback on_idle);
  // The engine slept (or failed to, and the worker serves again).
  void EndSleep(const absl::Status& status);
  // The caller wakes the engine and reports with EndWake. FailedPrecondition while a sleep is under way,
  // Unavailable while loading or draining.
  absl::Status BeginWake();
  // The engine is awake: admit calls again.
  void EndWake();
  // Stops admitting for good; `on_idle` runs once no call is open.
  void BeginDrain(Callback on_idle);

 private:
  enum class Phase { kLoading, kServing, kEnteringSleep, kAsleep, kWaking, kDraining };

  void SetPhaseLocked(Phase phase);
  // Runs `on_idle` now when no call is open, else keeps it for the last Leave.
  void WhenIdle(Callback on_idle, std::unique_lock<std::mutex>& lock);

  mutable std::mutex mu_;
  std::function<void(bool)> set_serving_;
  Phase phase_ = Phase::kLoading;
  int num_open_calls_ = 0;
  std::vector<Callback> idle_waiters_;
};

}  // namespace doze::service

#include "worker/service/worker_lifecycle.h"

#include <utility>

namespace doze::service {

WorkerLifecycle::WorkerLifecycle(std::function<void(bool serving)> set_serving)
    : set_serving_(std::move(set_serving)) {
  set_serving_(false);
}

WorkerState WorkerLifecycle::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  switch (phase_) {
    case Phase::kLoading:
      return WorkerState::kLoading;
    case Phase::kServing:
      return WorkerState::kServing;
    case Phase::kEnteringSleep:
    case Phase::kAsleep:
    case Phase::kWaking:
      return WorkerState::kSleeping;
    case Phase::kDraining:
      return WorkerState::kDraining;
  }
  return WorkerState::kLoading;
}

int WorkerLifecycle::num_open_calls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return num_open_calls_;
}

void WorkerLifecycle::SetServing() {
  std::lock_guard<std::mutex> lock(mu_);
  if (phase_ == Phase::kLoading) SetPhaseLocked(Phase::kServing);
}

absl::Status WorkerLifecycle::Admit() {
  std::lock_guard<std::mutex> lock(mu_);
  switch (phase_) {
    case Phase::kServing:
      ++num_open_calls_;
      return absl::OkStatus();
    case Phase::kLoading:
      return absl::UnavailableError("the worker is loading its model");
    case Phase::kDraining:
      return absl::UnavailableError("the worker is draining");
    default:
      return absl::FailedPreconditionError("the worker is sleeping; call Wake first");
  }
}

void WorkerLifecycle::Leave() {
  std::vector<Callback> waiters;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (--num_open_calls_ == 0) waiters = std::exchange(idle_waiters_, {});
  }
  for (Callback& waiter : waiters) waiter();
}

absl::Status WorkerLifecycle::BeginSleep(Callback on_idle) {
  std::unique_lock<std::mutex> lock(mu_);
  switch (phase_) {
    case Phase::kLoading:
      return absl::UnavailableError("the worker is loading its model");
    case Phase::kDraining:
      return absl::UnavailableError("the worker is draining");
    case Phase::kWaking:
      return absl::FailedPreconditionError("a Wake is under way");
    default:
      break;
  }
  if (phase_ == Phase::kServing) SetPhaseLocked(Phase::kEnteringSleep);
  WhenIdle(std::move(on_idle), lock);
  return absl::OkStatus();
}

void WorkerLifecycle::EndSleep(const absl::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (phase_ != Phase::kEnteringSleep) return;
  SetPhaseLocked(status.ok() ? Phase::kAsleep : Phase::kServing);
}

absl::Status WorkerLifecycle::BeginWake() {
  std::lock_guard<std::mutex> lock(mu_);
  switch (phase_) {
    case Phase::kLoading:
      return absl::UnavailableError("the worker is loading its model");
    case Phase::kDraining:
      return absl::UnavailableError("the worker is draining");
    case Phase::kEnteringSleep:
      return absl::FailedPreconditionError("a Sleep is under way");
    case Phase::kAsleep:
      SetPhaseLocked(Phase::kWaking);
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

void WorkerLifecycle::EndWake() {
  std::lock_guard<std::mutex> lock(mu_);
  if (phase_ == Phase::kWaking) SetPhaseLocked(Phase::kServing);
}

void WorkerLifecycle::BeginDrain(Callback on_idle) {
  std::unique_lock<std::mutex> lock(mu_);
  if (phase_ != Phase::kDraining) SetPhaseLocked(Phase::kDraining);
  WhenIdle(std::move(on_idle), lock);
}

void WorkerLifecycle::SetPhaseLocked(Phase phase) {
  const bool was_serving = phase_ == Phase::kServing;
  phase_ = phase;
  if (was_serving != (phase == Phase::kServing)) set_serving_(phase == Phase::kServing);
}

void WorkerLifecycle::WhenIdle(Callback on_idle, std::unique_lock<std::mutex>& lock) {
  if (num_open_calls_ > 0) {
    idle_waiters_.push_back(std::move(on_idle));
    return;
  }
  lock.unlock();
  on_idle();
}

}  // namespace doze::service

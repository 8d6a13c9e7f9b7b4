#include "gateway/workers/idle_stopper.h"

#include "absl/strings/str_cat.h"

namespace doze::gateway {

void IdleStopper::Tick() const {
  absl::Time now = clock_->Now();
  for (const auto& function : functions_->All()) {
    WorkerState state = function->supervisor().state();
    if (state != WorkerState::kReady && state != WorkerState::kSleeping) continue;
    const Dispatcher& dispatcher = function->dispatcher();
    if (dispatcher.queue_depth() > 0 || dispatcher.in_flight() > 0) continue;
    absl::Time idle_since = std::max(dispatcher.last_activity(), function->supervisor().snapshot().since);
    if (now - idle_since >= idle_stop_) {
      function->supervisor().Stop(absl::StrCat("idle for ", absl::FormatDuration(now - idle_since)));
    }
  }
}

}  // namespace doze::gateway

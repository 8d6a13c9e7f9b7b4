// The default lifecycle when no schedule drives the workers: a worker is started by demand (the dispatcher)
// and stopped once its function has been idle for workers.idle_stop. Time comes from the injected clock.
#pragma once

#include "absl/time/time.h"
#include "gateway/common/clock.h"
#include "gateway/functions/function_table.h"

namespace doze::gateway {

class IdleStopper {
 public:
  // `functions` and `clock` must outlive the stopper.
  IdleStopper(const FunctionTable* functions, Clock* clock, absl::Duration idle_stop)
      : functions_(functions), clock_(clock), idle_stop_(idle_stop) {}

  // Stops every running worker whose function has no queued or running request and has been idle for
  // idle_stop; called periodically by the gateway's policy timer.
  void Tick() const;

  // Changes the idle limit (reload).
  void set_idle_stop(absl::Duration idle_stop) { idle_stop_ = idle_stop; }

 private:
  const FunctionTable* functions_;
  Clock* clock_;
  absl::Duration idle_stop_;
};

}  // namespace doze::gateway

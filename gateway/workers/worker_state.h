// The states of a function's worker process, as its supervisor sees them, and the record of a change between
// them. The lifecycle policy's own state of the function is lifecycle::FunctionState (which adds archived and
// draining); /ops/status shows this one as `state` and that one as `lifecycle.state`.
#pragma once

#include <string>

#include "absl/time/time.h"

namespace doze::gateway {

enum class WorkerState {
  kStopped,   // No process.
  kStarting,  // Process started, not yet SERVING.
  kReady,     // SERVING: requests are dispatched.
  kSleeping,  // Process alive, weights out of the GPU.
  kWaking,    // Wake sent, not yet answered.
  kStopping,  // SIGTERM sent, waiting for the exit.
  kFailed,    // The last start failed or the process died; restarted on demand after the back-off.
};

// Returns the lower-case name used in /ops/status and metrics ("ready", "failed", ...).
const char* WorkerStateName(WorkerState state);

// One change of state.
struct WorkerTransition {
  std::string function;
  WorkerState from;
  WorkerState to;
  std::string reason;
  absl::Time time;
};

}  // namespace doze::gateway

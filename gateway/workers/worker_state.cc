#include "gateway/workers/worker_state.h"

namespace doze::gateway {

const char* WorkerStateName(WorkerState state) {
  switch (state) {
    case WorkerState::kStopped:
      return "stopped";
    case WorkerState::kStarting:
      return "starting";
    case WorkerState::kReady:
      return "ready";
    case WorkerState::kSleeping:
      return "sleeping";
    case WorkerState::kWaking:
      return "waking";
    case WorkerState::kStopping:
      return "stopping";
    case WorkerState::kFailed:
      return "failed";
  }
  return "unknown";
}

}  // namespace doze::gateway

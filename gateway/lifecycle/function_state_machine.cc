#include "gateway/lifecycle/function_state_machine.h"

#include "worker/common/logging.h"

namespace doze::lifecycle {

const char* WorkerStateName(WorkerState state) {
  switch (state) {
    case WorkerState::kArchived:
      return "archived";
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
    case WorkerState::kDraining:
      return "draining";
    case WorkerState::kFailed:
      return "failed";
  }
  return "unknown";
}

bool ParseWorkerState(const std::string& name, WorkerState* state) {
  for (WorkerState candidate :
       {WorkerState::kArchived, WorkerState::kStopped, WorkerState::kStarting, WorkerState::kReady,
        WorkerState::kSleeping, WorkerState::kWaking, WorkerState::kDraining, WorkerState::kFailed}) {
    if (name == WorkerStateName(candidate)) {
      *state = candidate;
      return true;
    }
  }
  return false;
}

bool FunctionStateMachine::IsAllowed(WorkerState from, WorkerState to) {
  using S = WorkerState;
  if (to == S::kFailed) return from != S::kArchived && from != S::kStopped;
  switch (from) {
    case S::kArchived:
      return to == S::kStopped || to == S::kStarting;
    case S::kStopped:
      return to == S::kStarting || to == S::kArchived;
    case S::kStarting:
      return to == S::kReady || to == S::kDraining;
    case S::kReady:
      return to == S::kDraining || to == S::kSleeping;
    case S::kSleeping:
      return to == S::kWaking || to == S::kDraining;
    case S::kWaking:
      return to == S::kReady || to == S::kDraining;
    case S::kDraining:
      return to == S::kStopped || to == S::kArchived;
    case S::kFailed:
      return to == S::kStarting || to == S::kStopped || to == S::kArchived;
  }
  return false;
}

FunctionStateMachine::FunctionStateMachine(WorkerState initial, absl::Time at, std::string reason)
    : state_(initial), since_(at) {
  history_.push_back({at, initial, initial, std::move(reason)});
}

void FunctionStateMachine::PrependHistory(const std::vector<Transition>& earlier) {
  history_.insert(history_.begin(), earlier.begin(), earlier.end());
  while (history_.size() > kMaxHistory) history_.pop_front();
}

const Transition& FunctionStateMachine::TransitionTo(WorkerState to, absl::Time at, std::string reason) {
  DOZE_CHECK(IsAllowed(state_, to)) << WorkerStateName(state_) << " -> " << WorkerStateName(to) << " ("
                                    << reason << ")";
  history_.push_back({at, state_, to, std::move(reason)});
  if (history_.size() > kMaxHistory) history_.pop_front();
  state_ = to;
  since_ = at;
  return history_.back();
}

}  // namespace doze::lifecycle

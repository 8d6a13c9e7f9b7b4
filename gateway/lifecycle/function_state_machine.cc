#include "gateway/lifecycle/function_state_machine.h"

#include "worker/common/logging.h"

namespace doze::lifecycle {

const char* FunctionStateName(FunctionState state) {
  switch (state) {
    case FunctionState::kArchived:
      return "archived";
    case FunctionState::kStopped:
      return "stopped";
    case FunctionState::kStarting:
      return "starting";
    case FunctionState::kReady:
      return "ready";
    case FunctionState::kSleeping:
      return "sleeping";
    case FunctionState::kWaking:
      return "waking";
    case FunctionState::kDraining:
      return "draining";
    case FunctionState::kFailed:
      return "failed";
  }
  return "unknown";
}

bool ParseFunctionState(const std::string& name, FunctionState* state) {
  for (FunctionState candidate :
       {FunctionState::kArchived, FunctionState::kStopped, FunctionState::kStarting, FunctionState::kReady,
        FunctionState::kSleeping, FunctionState::kWaking, FunctionState::kDraining, FunctionState::kFailed}) {
    if (name == FunctionStateName(candidate)) {
      *state = candidate;
      return true;
    }
  }
  return false;
}

bool FunctionStateMachine::IsAllowed(FunctionState from, FunctionState to) {
  using S = FunctionState;
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

FunctionStateMachine::FunctionStateMachine(FunctionState initial, absl::Time at, std::string reason)
    : state_(initial), since_(at) {
  history_.push_back({at, initial, initial, std::move(reason)});
}

void FunctionStateMachine::PrependHistory(const std::vector<Transition>& earlier) {
  history_.insert(history_.begin(), earlier.begin(), earlier.end());
  while (history_.size() > kMaxHistory) history_.pop_front();
}

const Transition& FunctionStateMachine::TransitionTo(FunctionState to, absl::Time at, std::string reason) {
  DOZE_CHECK(IsAllowed(state_, to)) << FunctionStateName(state_) << " -> " << FunctionStateName(to) << " ("
                                    << reason << ")";
  history_.push_back({at, state_, to, std::move(reason)});
  if (history_.size() > kMaxHistory) history_.pop_front();
  state_ = to;
  since_ = at;
  return history_.back();
}

}  // namespace doze::lifecycle

// LifecyclePolicy::Operate: an operator's start, stop, sleep and wake, carried out through the policy's
// states so that each gets its reason and time and the ledger counts what follows.
#include "absl/strings/str_cat.h"
#include "gateway/lifecycle/lifecycle_policy.h"
#include "gateway/lifecycle/policy_function.h"
#include "worker/common/status_macros.h"

namespace doze::lifecycle {

const char* OperatorActionName(OperatorAction action) {
  switch (action) {
    case OperatorAction::kStart:
      return "start";
    case OperatorAction::kStop:
      return "stop";
    case OperatorAction::kSleep:
      return "sleep";
    case OperatorAction::kWake:
      return "wake";
  }
  return "unknown";
}

absl::StatusOr<std::vector<Decision>> LifecyclePolicy::Operate(const std::string& function,
                                                               OperatorAction action) {
  auto it = functions_.find(function);
  if (it == functions_.end())
    return absl::NotFoundError(absl::StrCat("no function named \"", function, "\""));
  const absl::Time now = clock_->Now();
  std::vector<Decision> out;
  RETURN_IF_ERROR(OperateOn(*it->second, action, now, &out));
  Evaluate(*it->second, now, &out);
  return out;
}

absl::Status LifecyclePolicy::OperateOn(Function& f, OperatorAction action, absl::Time now,
                                        std::vector<Decision>* out) {
  const std::string reason = absl::StrCat("operator ", OperatorActionName(action));
  const FunctionState state = f.machine.state();
  if (action == OperatorAction::kStart || action == OperatorAction::kWake) {
    if (f.mark.archived) {
      return absl::FailedPreconditionError(
          absl::StrCat(f.name, " is archived; restore it first (POST /ops/functions/", f.name, "/restore)"));
    }
    f.held_until = absl::InfinitePast();
    // Evaluate starts (wakes) a down worker now, and a draining one once it has stopped.
    const bool up = state == FunctionState::kStarting || state == FunctionState::kWaking ||
                    state == FunctionState::kReady;
    if (!up) f.operator_start = reason;
    return absl::OkStatus();
  }
  if (action == OperatorAction::kSleep) {
    if (state == FunctionState::kSleeping) {
      f.held_until = NextResidencyStart(f, now);
      return absl::OkStatus();
    }
    if (state != FunctionState::kReady) {
      return absl::FailedPreconditionError(absl::StrCat(
          f.name, " has no ready worker to put to sleep (it is ", FunctionStateName(state), ")"));
    }
    if (f.in_flight > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(f.name, " has ", f.in_flight,
                       " requests in flight; put it to sleep once they finish, or "
                       "stop it (a stop lets them finish)"));
    }
    f.held_until = NextResidencyStart(f, now);
    Move(f, FunctionState::kSleeping, now, reason);
    out->push_back({Action::kSleep, f.name, reason});
    return absl::OkStatus();
  }
  // Stop.
  f.operator_start.clear();
  if (state == FunctionState::kArchived) return absl::OkStatus();  // Down until restored anyway.
  f.held_until = NextResidencyStart(f, now);
  switch (state) {
    case FunctionState::kStarting:
    case FunctionState::kWaking:
    case FunctionState::kReady:
    case FunctionState::kSleeping:
      if (f.in_flight == 0) {
        StopWorker(f, now, reason, out);
      } else {
        Move(f, FunctionState::kDraining, now, reason);  // The stop goes out when the last request finishes.
      }
      break;
    case FunctionState::kFailed:
      // No process; the stop cancels a start the supervisor's back-off may still hold.
      Move(f, FunctionState::kStopped, now, reason);
      out->push_back({Action::kStop, f.name, reason});
      break;
    default:
      break;  // Stopped, or draining already.
  }
  return absl::OkStatus();
}

absl::Time LifecyclePolicy::NextResidencyStart(const Function& f, absl::Time now) const {
  // The window open now (or pre-warming now) is the one an operator holds off: find the next one whose
  // pre-warm has not begun.
  absl::Time open = f.schedule.NextOpening(now);
  while (open != absl::InfiniteFuture() && open - f.policy.prewarm <= now)
    open = f.schedule.NextOpening(open);
  return open == absl::InfiniteFuture() ? open : open - f.policy.prewarm;
}

}  // namespace doze::lifecycle

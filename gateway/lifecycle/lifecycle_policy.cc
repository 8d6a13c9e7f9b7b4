#include "gateway/lifecycle/lifecycle_policy.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gateway/lifecycle/policy_function.h"
#include "worker/common/duration.h"
#include "worker/common/logging.h"
#include "worker/common/status_macros.h"

namespace doze::lifecycle {

LifecyclePolicy::LifecyclePolicy(const LifecycleConfig& config, const gateway::Clock* clock, Ledger* ledger,
                                 StateStore* store)
    : clock_(clock), ledger_(ledger), store_(store) {
  const absl::Time now = clock_->Now();
  for (const auto& [name, policy] : config.functions) AddFunction(name, policy, now, "gateway started");
}

LifecyclePolicy::~LifecyclePolicy() = default;

void LifecyclePolicy::AddFunction(const std::string& name, const SchedulePolicy& policy, absl::Time now,
                                  const std::string& reason) {
  functions_.emplace(name, std::make_unique<Function>(name, policy, now, reason));
  ledger_->SetUse(name, GpuUse::kOff, now);
}

absl::Status LifecyclePolicy::Load() {
  if (store_ == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(auto transitions, store_->LoadTransitions());
  ASSIGN_OR_RETURN(auto marks, store_->LoadArchiveMarks());
  const absl::Time now = clock_->Now();
  for (auto& [name, f] : functions_) LoadFunction(*f, transitions, marks, now);
  return absl::OkStatus();
}

void LifecyclePolicy::LoadFunction(Function& f,
                                   const std::map<std::string, std::vector<Transition>>& transitions,
                                   const std::map<std::string, ArchiveMark>& marks, absl::Time now) {
  if (auto it = transitions.find(f.name); it != transitions.end()) f.machine.PrependHistory(it->second);
  auto it = marks.find(f.name);
  if (it == marks.end()) return;
  f.mark = it->second;
  if (f.mark.archived)
    Move(f, FunctionState::kArchived, now, absl::StrCat("still archived: ", f.mark.reason));
}

std::vector<Decision> LifecyclePolicy::Reconfigure(const LifecycleConfig& config) {
  const absl::Time now = clock_->Now();
  for (auto it = functions_.begin(); it != functions_.end();) {
    if (config.functions.contains(it->first)) {
      ++it;
      continue;
    }
    DOZE_LOG(INFO) << "lifecycle: " << it->first << " was removed from the configuration";
    ledger_->StopTracking(it->first, now);
    it = functions_.erase(it);
  }
  std::map<std::string, std::vector<Transition>> transitions;
  std::map<std::string, ArchiveMark> marks;
  if (store_ != nullptr) {
    absl::StatusOr<std::map<std::string, std::vector<Transition>>> stored_transitions =
        store_->LoadTransitions();
    absl::StatusOr<std::map<std::string, ArchiveMark>> stored_marks = store_->LoadArchiveMarks();
    if (stored_transitions.ok()) transitions = *std::move(stored_transitions);
    if (stored_marks.ok()) marks = *std::move(stored_marks);
    if (!stored_transitions.ok() || !stored_marks.ok()) {
      DOZE_LOG(ERROR) << "lifecycle: reading the state file: "
                      << (stored_transitions.ok() ? stored_marks.status() : stored_transitions.status());
    }
  }
  for (const auto& [name, policy] : config.functions) {
    auto it = functions_.find(name);
    if (it != functions_.end()) {
      it->second->SetPolicy(policy);
      // An operator's hold lasts until the next window of the new schedule.
      if (it->second->held_until != absl::InfinitePast()) {
        it->second->held_until = NextResidencyStart(*it->second, now);
      }
      continue;
    }
    AddFunction(name, policy, now, "added by a configuration reload");
    LoadFunction(*functions_.at(name), transitions, marks, now);
  }
  std::vector<Decision> out;
  for (auto& [name, f] : functions_) Evaluate(*f, now, &out);
  return out;
}

LifecyclePolicy::Function& LifecyclePolicy::Get(const std::string& function) {
  auto it = functions_.find(function);
  DOZE_CHECK(it != functions_.end()) << "unknown function " << function;
  return *it->second;
}

const LifecyclePolicy::Function& LifecyclePolicy::Get(const std::string& function) const {
  auto it = functions_.find(function);
  DOZE_CHECK(it != functions_.end()) << "unknown function " << function;
  return *it->second;
}

std::vector<Decision> LifecyclePolicy::OnRequestQueued(const std::string& function) {
  Function& f = Get(function);
  ++f.queued;
  f.held_until = absl::InfinitePast();  // A request lifts an operator's stop or sleep.
  std::vector<Decision> out;
  Evaluate(f, clock_->Now(), &out);
  return out;
}

void LifecyclePolicy::OnRequestStarted(const std::string& function, absl::Time queued_at) {
  Function& f = Get(function);
  const absl::Time now = clock_->Now();
  f.queued = std::max(0, f.queued - 1);
  ++f.in_flight;
  // A request queued before its worker became ready waited for a start or a wake.
  if (queued_at < f.ready_since) ledger_->RecordColdWait(f.name, now, now - queued_at);
  UpdateGpuUse(f, now);
}

std::vector<Decision> LifecyclePolicy::OnRequestFinished(const std::string& function) {
  Function& f = Get(function);
  const absl::Time now = clock_->Now();
  f.in_flight = std::max(0, f.in_flight - 1);
  if (f.in_flight == 0) f.last_finish = now;
  std::vector<Decision> out;
  Evaluate(f, now, &out);
  return out;
}

std::vector<Decision> LifecyclePolicy::OnRequestAbandoned(const std::string& function) {
  Function& f = Get(function);
  f.queued = std::max(0, f.queued - 1);
  std::vector<Decision> out;
  Evaluate(f, clock_->Now(), &out);
  return out;
}

std::vector<Decision> LifecyclePolicy::OnWorkerEvent(const std::string& function, WorkerEvent event,
                                                     const std::string& detail) {
  Function& f = Get(function);
  const absl::Time now = clock_->Now();
  const FunctionState state = f.machine.state();
  const bool down = state == FunctionState::kStopped || state == FunctionState::kArchived;
  if (event == WorkerEvent::kReady &&
      (state == FunctionState::kStarting || state == FunctionState::kWaking)) {
    f.ready_since = now;
    Move(f, FunctionState::kReady, now, state == FunctionState::kStarting ? "worker started" : "worker woke");
  } else if (event == WorkerEvent::kStopped && state == FunctionState::kDraining) {
    f.stop_sent = false;
    Move(f, f.mark.archived ? FunctionState::kArchived : FunctionState::kStopped, now,
         f.mark.archived ? absl::StrCat("archived: ", f.mark.reason) : "worker stopped");
  } else if (event != WorkerEvent::kReady && !down && state != FunctionState::kFailed) {
    f.stop_sent = false;
    f.retry_at = now + kFailedRetryDelay;
    Move(f, FunctionState::kFailed, now,
         event == WorkerEvent::kStopped ? absl::StrCat("worker exited unexpectedly ", detail) : detail);
  } else {
    DOZE_LOG(WARNING) << "lifecycle: ignoring worker event " << static_cast<int>(event) << " of " << function
                      << " in state " << FunctionStateName(state);
  }
  std::vector<Decision> out;
  Evaluate(f, now, &out);
  return out;
}

std::vector<Decision> LifecyclePolicy::Tick() {
  const absl::Time now = clock_->Now();
  std::vector<Decision> out;
  for (auto& [name, f] : functions_) Evaluate(*f, now, &out);
  return out;
}

absl::StatusOr<std::vector<Decision>> LifecyclePolicy::Archive(const std::string& function,
                                                               const std::string& reason) {
  auto it = functions_.find(function);
  if (it == functions_.end())
    return absl::NotFoundError(absl::StrCat("no function named \"", function, "\""));
  std::vector<Decision> out;
  const absl::Time now = clock_->Now();
  if (!it->second->mark.archived) SetArchived(*it->second, now, true, reason, /*by_operator=*/true, &out);
  Evaluate(*it->second, now, &out);
  return out;
}

absl::StatusOr<std::vector<Decision>> LifecyclePolicy::Restore(const std::string& function) {
  auto it = functions_.find(function);
  if (it == functions_.end())
    return absl::NotFoundError(absl::StrCat("no function named \"", function, "\""));
  std::vector<Decision> out;
  const absl::Time now = clock_->Now();
  SetArchived(*it->second, now, false, "restored by an operator", /*by_operator=*/true, &out);
  Evaluate(*it->second, now, &out);
  return out;
}

void LifecyclePolicy::Evaluate(Function& f, absl::Time now, std::vector<Decision>* out) {
  RefreshResidency(f, now);
  if (now >= f.held_until) f.held_until = absl::InfinitePast();
  if (f.mark.archived && f.queued > 0) {
    if (f.policy.archive.on_request == ArchivedRequestAction::kReject) {
      out->push_back({Action::kReject, f.name, "archived; an operator must restore it"});
      f.queued = 0;
    } else {
      SetArchived(f, now, false, "request queued while archived", /*by_operator=*/false, out);
    }
  }
  switch (f.machine.state()) {
    case FunctionState::kArchived:
    case FunctionState::kStopped:
    case FunctionState::kFailed:
    case FunctionState::kSleeping:
      EvaluateDown(f, now, out);
      break;
    case FunctionState::kReady:
      EvaluateReady(f, now, out);
      break;
    case FunctionState::kDraining:
      if (f.in_flight == 0 && !f.stop_sent) {
        f.stop_sent = true;
        out->push_back({Action::kStop, f.name, f.machine.history().back().reason});
      }
      break;
    case FunctionState::kStarting:
    case FunctionState::kWaking:
      break;
  }
  EvaluateArchiveRule(f, now, out);
  UpdateGpuUse(f, now);
}

void LifecyclePolicy::RefreshResidency(Function& f, absl::Time now) {
  if (now < f.residency_until) return;
  if (f.schedule.empty()) {
    f.resident = false;
    f.residency_until = absl::InfiniteFuture();
    return;
  }
  const ResidentWindow* window = f.schedule.WindowAt(now);
  const absl::Time next_open = f.schedule.NextOpening(now);
  const absl::Time prewarm_at = next_open - f.policy.prewarm;
  const bool prewarming = window == nullptr && prewarm_at <= now;
  f.resident = window != nullptr || prewarming;
  if (window != nullptr) {
    f.resident_reason = absl::StrCat("resident window ", window->ToString());
  } else if (prewarming) {
    f.resident_reason = absl::StrCat("prewarm ", FormatConfigDuration(f.policy.prewarm), " before ",
                                     absl::FormatTime("%Y-%m-%d %H:%M %Z", next_open, f.policy.timezone));
  }
  f.residency_until = f.schedule.NextBoundary(now);
  if (prewarm_at > now) f.residency_until = std::min(f.residency_until, prewarm_at);
}

void LifecyclePolicy::EvaluateDown(Function& f, absl::Time now, std::vector<Decision>* out) {
  const FunctionState state = f.machine.state();
  if (state == FunctionState::kArchived) return;  // Left only by a restore (above, or by an operator).
  if (f.mark.archived) {
    if (state == FunctionState::kSleeping) {
      StopWorker(f, now, absl::StrCat("archived: ", f.mark.reason), out);
    } else {
      Move(f, FunctionState::kArchived, now, absl::StrCat("archived: ", f.mark.reason));
    }
    return;
  }
  if (state == FunctionState::kFailed && f.queued == 0 && f.operator_start.empty() && now < f.retry_at)
    return;
  if (f.queued > 0) {
    StartWorker(f, now, /*demand=*/true, "request queued", out);
  } else if (!f.operator_start.empty()) {
    StartWorker(f, now, /*demand=*/false, f.operator_start, out);
  } else if (f.resident && now >= f.held_until) {
    StartWorker(f, now, /*demand=*/false, f.resident_reason, out);
  }
}

void LifecyclePolicy::EvaluateReady(Function& f, absl::Time now, std::vector<Decision>* out) {
  if (f.mark.archived) {
    const std::string reason = absl::StrCat("archived: ", f.mark.reason);
    if (f.in_flight == 0) {
      StopWorker(f, now, reason, out);
    } else {
      Move(f, FunctionState::kDraining, now, reason);  // The stop goes out when the last request finishes.
    }
    return;
  }
  if (f.resident || f.queued > 0 || f.in_flight > 0 || !IdleLongEnough(f, now)) return;
  const std::string reason =
      absl::StrCat("idle ", FormatConfigDuration(f.policy.idle_timeout), " outside resident windows");
  if (f.policy.idle_action == IdleAction::kStop) {
    StopWorker(f, now, reason, out);
  } else {
    Move(f, FunctionState::kSleeping, now, reason);
    out->push_back({Action::kSleep, f.name, reason});
  }
}

void LifecyclePolicy::EvaluateArchiveRule(Function& f, absl::Time now, std::vector<Decision>* out) {
  const ArchiveRule& rule = f.policy.archive;
  if (!rule.enabled || f.mark.archived || now < f.next_archive_check) return;
  // A full window must have been watched, and an operator's restore starts a fresh one.
  const absl::Time watched_since = std::max(ledger_->TrackingSince(f.name), f.mark.operator_restored_at);
  if (now - watched_since < rule.window) {
    f.next_archive_check = watched_since + rule.window;
    return;
  }
  f.next_archive_check = now + kArchiveCheckInterval;
  const FunctionState state = f.machine.state();
  // Only a function nobody is using is archived: down, asleep, or ready and idle past its timeout.
  const bool unused =
      state == FunctionState::kStopped || state == FunctionState::kFailed ||
      state == FunctionState::kSleeping ||
      (state == FunctionState::kReady && f.queued == 0 && f.in_flight == 0 && IdleLongEnough(f, now));
  if (!unused) return;
  ledger_->Settle(now);
  const double utilization =
      ledger_->BusySeconds(f.name, now - rule.window, now) / absl::ToDoubleSeconds(rule.window);
  if (utilization >= rule.below_utilization) return;
  SetArchived(f, now, true,
              absl::StrFormat("utilisation %.2f%% < %.2f%% over %s", 100 * utilization,
                              100 * rule.below_utilization, FormatConfigDuration(rule.window)),
              /*by_operator=*/false, out);
  if (state == FunctionState::kReady) StopWorker(f, now, absl::StrCat("archived: ", f.mark.reason), out);
  if (state == FunctionState::kSleeping) StopWorker(f, now, absl::StrCat("archived: ", f.mark.reason), out);
}

absl::Time LifecyclePolicy::IdleDeadline(const Function& f) const {
  const absl::Time idle_since = std::max(f.last_finish, f.ready_since);
  return std::max(idle_since + f.policy.idle_timeout, f.ready_since + f.policy.min_ready);
}

bool LifecyclePolicy::IdleLongEnough(const Function& f, absl::Time now) const {
  return now >= IdleDeadline(f);
}

void LifecyclePolicy::StartWorker(Function& f, absl::Time now, bool demand, std::string reason,
                                  std::vector<Decision>* out) {
  const bool waking = f.machine.state() == FunctionState::kSleeping;
  f.operator_start.clear();
  if (demand) ledger_->RecordColdStart(f.name, now);
  Move(f, waking ? FunctionState::kWaking : FunctionState::kStarting, now, reason);
  out->push_back({waking ? Action::kWake : Action::kStart, f.name, reason});
}

void LifecyclePolicy::StopWorker(Function& f, absl::Time now, const std::string& reason,
                                 std::vector<Decision>* out) {
  Move(f, FunctionState::kDraining, now, reason);
  f.stop_sent = true;
  out->push_back({Action::kStop, f.name, reason});
}

void LifecyclePolicy::SetArchived(Function& f, absl::Time now, bool archived, const std::string& reason,
                                  bool by_operator, std::vector<Decision>* out) {
  if (f.mark.archived == archived) return;
  f.mark.archived = archived;
  f.mark.at = now;
  f.mark.reason = reason;
  if (!archived && by_operator) f.mark.operator_restored_at = now;
  if (store_ != nullptr) {
    absl::Status saved = store_->SaveArchiveMark(f.name, f.mark);
    if (!saved.ok()) DOZE_LOG(ERROR) << "lifecycle: " << saved;
  }
  out->push_back({archived ? Action::kArchive : Action::kRestore, f.name, reason});
  const FunctionState state = f.machine.state();
  if (archived && (state == FunctionState::kStopped || state == FunctionState::kFailed)) {
    Move(f, FunctionState::kArchived, now, reason);
  } else if (!archived && state == FunctionState::kArchived) {
    Move(f, FunctionState::kStopped, now, reason);
  }
}

void LifecyclePolicy::Move(Function& f, FunctionState to, absl::Time now, std::string reason) {
  const Transition& transition = f.machine.TransitionTo(to, now, std::move(reason));
  DOZE_LOG(DEBUG) << "lifecycle: " << f.name << " " << FunctionStateName(transition.from) << " -> "
                  << FunctionStateName(to) << ": " << transition.reason;
  if (store_ == nullptr) return;
  absl::Status saved = store_->AppendTransition(f.name, transition);
  if (!saved.ok()) DOZE_LOG(ERROR) << "lifecycle: " << saved;
}

void LifecyclePolicy::UpdateGpuUse(Function& f, absl::Time now) {
  GpuUse use = GpuUse::kOff;
  switch (f.machine.state()) {
    case FunctionState::kStarting:
    case FunctionState::kWaking:
      use = GpuUse::kWarming;
      break;
    case FunctionState::kReady:
    case FunctionState::kDraining:
      use = f.in_flight > 0 ? GpuUse::kBusy : GpuUse::kIdle;
      break;
    default:
      break;
  }
  ledger_->SetUse(f.name, use, now);
}

absl::Time LifecyclePolicy::DeadlineOf(const Function& f) const {
  absl::Time next = f.residency_until;
  const FunctionState state = f.machine.state();
  if (state == FunctionState::kReady && !f.resident && f.queued == 0 && f.in_flight == 0) {
    next = std::min(next, IdleDeadline(f));
  }
  if (state == FunctionState::kFailed && (f.queued > 0 || f.resident)) next = std::min(next, f.retry_at);
  if (f.held_until != absl::InfinitePast()) next = std::min(next, f.held_until);
  if (f.policy.archive.enabled && !f.mark.archived) next = std::min(next, f.next_archive_check);
  return next;
}

absl::Time LifecyclePolicy::NextDeadline() const {
  absl::Time next = absl::InfiniteFuture();
  for (const auto& [name, f] : functions_) next = std::min(next, DeadlineOf(*f));
  return next;
}

bool LifecyclePolicy::CanDispatch(const std::string& function) const {
  return Get(function).machine.state() == FunctionState::kReady;
}

FunctionState LifecyclePolicy::StateOf(const std::string& function) const {
  return Get(function).machine.state();
}

std::vector<FunctionStatus> LifecyclePolicy::Status() const {
  std::vector<FunctionStatus> status;
  for (const auto& [name, f] : functions_) {
    FunctionStatus s{name,      f->machine.state(), f->machine.since(), f->mark.archived,
                     f->queued, f->in_flight,       f->resident,        DeadlineOf(*f),
                     {}};
    s.transitions.assign(f->machine.history().begin(), f->machine.history().end());
    status.push_back(std::move(s));
  }
  return status;
}

}  // namespace doze::lifecycle

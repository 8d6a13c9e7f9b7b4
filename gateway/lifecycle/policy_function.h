// What LifecyclePolicy keeps of each function; private to the policy's own files (lifecycle_policy.cc,
// operator_actions.cc).
#pragma once

#include <string>

#include "absl/time/time.h"
#include "gateway/lifecycle/function_state_machine.h"
#include "gateway/lifecycle/lifecycle_config.h"
#include "gateway/lifecycle/lifecycle_policy.h"
#include "gateway/lifecycle/resident_schedule.h"
#include "gateway/lifecycle/state_store.h"

namespace doze::lifecycle {

struct LifecyclePolicy::Function {
  Function(std::string function_name, SchedulePolicy schedule_policy, absl::Time now, std::string reason)
      : name(std::move(function_name)),
        policy(std::move(schedule_policy)),
        schedule(policy.timezone, policy.resident),
        machine(FunctionState::kStopped, now, std::move(reason)) {}

  // Takes `new_policy` from now on: residency and the archive check are worked out afresh.
  void SetPolicy(const SchedulePolicy& new_policy) {
    policy = new_policy;
    schedule = ResidentSchedule(policy.timezone, policy.resident);
    residency_until = absl::InfinitePast();
    next_archive_check = absl::InfinitePast();
  }

  std::string name;
  SchedulePolicy policy;
  ResidentSchedule schedule;
  FunctionStateMachine machine;
  ArchiveMark mark;
  int queued = 0;
  int in_flight = 0;
  absl::Time ready_since = absl::InfinitePast();  // When the worker last became ready.
  absl::Time last_finish = absl::InfinitePast();  // When the last request in flight finished.
  absl::Time retry_at = absl::InfinitePast();     // When a failed worker may be started again.
  bool stop_sent = false;                         // Draining, and the stop decision is out.
  std::string operator_start;                     // An operator's start or wake waits for the worker to stop.
  absl::Time held_until = absl::InfinitePast();   // An operator's stop or sleep keeps windows off until then.
  bool resident = false;                          // Inside a window or its pre-warm.
  std::string resident_reason;
  absl::Time residency_until = absl::InfinitePast();  // `resident` holds until then.
  absl::Time next_archive_check = absl::InfinitePast();
};

}  // namespace doze::lifecycle

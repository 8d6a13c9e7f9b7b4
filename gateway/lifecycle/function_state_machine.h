// The states a function's worker goes through and the transitions allowed between them. Every transition
// keeps its time and reason, which /ops/status shows and the state file keeps.
//
//   archived ──restore──► stopped ──start──► starting ──ready──► ready ──sleep──► sleeping ──wake──► waking
//      ▲  └──request (restore mode)──────────────▲                 │  ▲                               │
//      │                                         │                 │  └───────────ready───────────────┘
//      └──────────── draining ◄──stop/archive────┘◄────────────────┘
//   failed: from any state when the worker dies or fails to start; started again after a short delay.
//   An operator's stop also drains a worker that is starting or waking.
#pragma once

#include <deque>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace doze::lifecycle {

// The lifecycle policy's state of a function: what the policy has decided and heard, including the archive
// mark (archived) and a stop waiting for requests in flight (draining). It is a different concept from
// doze::gateway::WorkerState, the state of the worker process as its supervisor sees it (no archived or
// draining, but stopping); /ops/status shows both, as `lifecycle.state` and `state`.
enum class FunctionState { kArchived, kStopped, kStarting, kReady, kSleeping, kWaking, kDraining, kFailed };

// Returns the lower-case name used in status pages and the state file ("ready", "draining", ...).
const char* FunctionStateName(FunctionState state);

// Parses a name written by FunctionStateName; false when it is none.
bool ParseFunctionState(const std::string& name, FunctionState* state);

// One change of state.
struct Transition {
  absl::Time at;
  FunctionState from;
  FunctionState to;
  std::string reason;
};

class FunctionStateMachine {
 public:
  // How many transitions are kept for status pages.
  static constexpr size_t kMaxHistory = 32;

  // Starts in `initial` at `at`; the first transition recorded is from `initial` to itself with `reason`.
  FunctionStateMachine(FunctionState initial, absl::Time at, std::string reason);

  // Returns the current state.
  FunctionState state() const { return state_; }

  // Returns when the current state was entered.
  absl::Time since() const { return since_; }

  // Returns the last transitions, oldest first.
  const std::deque<Transition>& history() const { return history_; }

  // True when the diagram above allows `from` -> `to`.
  static bool IsAllowed(FunctionState from, FunctionState to);

  // Puts transitions read back from the state file before the current history (oldest first).
  void PrependHistory(const std::vector<Transition>& earlier);

  // Moves to `to`, recording `reason`; a transition the diagram forbids is a bug in the policy and aborts.
  const Transition& TransitionTo(FunctionState to, absl::Time at, std::string reason);

 private:
  FunctionState state_;
  absl::Time since_;
  std::deque<Transition> history_;
};

}  // namespace doze::lifecycle

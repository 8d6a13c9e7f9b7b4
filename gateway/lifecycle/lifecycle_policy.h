// The lifecycle policy: decides, per function, when its worker starts, stops, sleeps and wakes, and when the
// function is archived. It is driven by events (a request queued, started, finished; a worker became ready,
// stopped or failed; a tick of the clock) and answers each with decisions for the gateway to carry out. It
// reads time only from the injected clock, so the gateway runs it on the real clock and the simulator and the
// tests on a virtual one. Not thread-safe: the gateway calls it from its one policy loop (or under one
// mutex).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/common/clock.h"
#include "gateway/lifecycle/decision.h"
#include "gateway/lifecycle/function_state_machine.h"
#include "gateway/lifecycle/ledger.h"
#include "gateway/lifecycle/lifecycle_config.h"
#include "gateway/lifecycle/resident_schedule.h"
#include "gateway/lifecycle/state_store.h"

namespace doze::lifecycle {

// What an operator asks of a function's worker (POST /ops/functions/{name}/start|stop|sleep|wake).
enum class OperatorAction { kStart, kStop, kSleep, kWake };

// Returns the lower-case name of `action` ("start", "stop", ...).
const char* OperatorActionName(OperatorAction action);

// A snapshot of one function for /ops/status.
struct FunctionStatus {
  std::string name;
  FunctionState state;
  absl::Time since;
  bool archived;
  int queued;
  int in_flight;
  bool resident;             // Inside a resident window (or its pre-warm) now.
  absl::Time next_deadline;  // When the policy will next act on its own; InfiniteFuture when never.
  std::vector<Transition> transitions;
};

class LifecyclePolicy {
 public:
  // How long a failed worker with no queued request waits before the policy starts it again (a resident
  // window wants it up). Queued requests restart it at once: the supervisor's back-off (1 s doubling to 60 s)
  // is what keeps a crash loop from spinning.
  static constexpr absl::Duration kFailedRetryDelay = absl::Seconds(5);
  // How often archive rules are evaluated.
  static constexpr absl::Duration kArchiveCheckInterval = absl::Minutes(1);

  // Every function of `config` starts stopped (or archived, when `store` says so). `clock` and `ledger` must
  // outlive the policy; `store` may be null (nothing persists).
  LifecyclePolicy(const LifecycleConfig& config, const gateway::Clock* clock, Ledger* ledger,
                  StateStore* store = nullptr);
  ~LifecyclePolicy();

  // Reads archive marks and the last transitions from the store; call once before the first event.
  absl::Status Load();

  // Applies a reloaded configuration from now on: a function new in `config` starts stopped (or archived,
  // as the store says), a function missing from it is forgotten (its ledger stops at once; the store keeps
  // its history), and every kept function takes its new schedule. Returns the decisions of evaluating every
  // function at once (e.g. a start for a function whose window is open).
  std::vector<Decision> Reconfigure(const LifecycleConfig& config);

  // True when `function` is under the policy; every other method but Archive and Restore requires it.
  bool Has(const std::string& function) const { return functions_.contains(function); }

  // A request joined the function's queue. A reject decision means it (and any other queued) gets a 409.
  std::vector<Decision> OnRequestQueued(const std::string& function);

  // A queued request was handed to the worker; `queued_at` is when it was queued (for cold-start waits).
  void OnRequestStarted(const std::string& function, absl::Time queued_at);

  // A request in flight finished, failed or was cancelled; with nothing left, the idle clock starts now.
  std::vector<Decision> OnRequestFinished(const std::string& function);

  // A queued request left the queue without reaching a worker (client gone, queue timeout).
  std::vector<Decision> OnRequestAbandoned(const std::string& function);

  // The supervisor observed `event` of the function's worker; `detail` says why (for failures).
  std::vector<Decision> OnWorkerEvent(const std::string& function, WorkerEvent event,
                                      const std::string& detail);

  // Evaluates every function at the clock's time: windows opening and closing, idle timeouts, archive rules.
  std::vector<Decision> Tick();

  // Archives a function by an operator's hand; NotFound for an unknown name.
  absl::StatusOr<std::vector<Decision>> Archive(const std::string& function, const std::string& reason);

  // Restores an archived function by an operator's hand; its utilisation window starts afresh now.
  absl::StatusOr<std::vector<Decision>> Restore(const std::string& function);

  // Carries out an operator's action through the rules (docs/lifecycle.md, "Operators"), with the reason
  // "operator start" (stop, sleep, wake): start and wake bring the worker up (a stop under way first ends);
  // stop and sleep take it down (stop lets requests in flight finish) and hold it down until the next
  // request, an operator's start or wake, or the next opening of a resident window. NotFound for an unknown
  // function; FailedPrecondition when its state does not allow the action (start of an archived function,
  // sleep of a worker that is not ready or has requests in flight).
  absl::StatusOr<std::vector<Decision>> Operate(const std::string& function, OperatorAction action);

  // Returns the earliest time at which Tick() would decide something; InfiniteFuture when nothing is pending.
  absl::Time NextDeadline() const;

  // True when requests of `function` may be handed to its worker now (ready).
  bool CanDispatch(const std::string& function) const;

  // Returns the state of `function` (which must exist).
  FunctionState StateOf(const std::string& function) const;

  // Returns a snapshot of every function, by name.
  std::vector<FunctionStatus> Status() const;

 private:
  struct Function;

  Function& Get(const std::string& function);
  const Function& Get(const std::string& function) const;
  void LoadFunction(Function& f, const std::map<std::string, std::vector<Transition>>& transitions,
                    const std::map<std::string, ArchiveMark>& marks, absl::Time now);
  void AddFunction(const std::string& name, const SchedulePolicy& policy, absl::Time now,
                   const std::string& reason);
  void Evaluate(Function& f, absl::Time now, std::vector<Decision>* out);
  void RefreshResidency(Function& f, absl::Time now);
  void EvaluateDown(Function& f, absl::Time now, std::vector<Decision>* out);
  void EvaluateReady(Function& f, absl::Time now, std::vector<Decision>* out);
  void EvaluateArchiveRule(Function& f, absl::Time now, std::vector<Decision>* out);
  bool IdleLongEnough(const Function& f, absl::Time now) const;
  absl::Time IdleDeadline(const Function& f) const;
  absl::Time DeadlineOf(const Function& f) const;
  absl::Status OperateOn(Function& f, OperatorAction action, absl::Time now, std::vector<Decision>* out);
  absl::Time NextResidencyStart(const Function& f, absl::Time now) const;
  // Starts (wakes) the worker; `reason` by value, as it may be the operator_start being cleared.
  void StartWorker(Function& f, absl::Time now, bool demand, std::string reason, std::vector<Decision>* out);
  void StopWorker(Function& f, absl::Time now, const std::string& reason, std::vector<Decision>* out);
  void SetArchived(Function& f, absl::Time now, bool archived, const std::string& reason, bool by_operator,
                   std::vector<Decision>* out);
  void Move(Function& f, FunctionState to, absl::Time now, std::string reason);
  void UpdateGpuUse(Function& f, absl::Time now);

  const gateway::Clock* clock_;
  Ledger* ledger_;
  StateStore* store_;
  std::map<std::string, std::unique_ptr<Function>> functions_;
};

}  // namespace doze::lifecycle

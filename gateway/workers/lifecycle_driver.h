// Runs the lifecycle policy inside the gateway: one timer-driven loop per gateway ticks the policy at its
// next deadline (at least every second), settles and flushes the ledger; request events come from the
// dispatchers and worker events from the supervisors; the decisions go back to the supervisors (start, stop,
// sleep, wake) and the dispatchers (409 for an archived function in reject mode). Thread-safe: the policy and
// the ledger are used under one mutex, and decisions are carried out after it is released. A reload
// reconfigures the policy in place: added functions come under it, removed ones leave it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/steady_timer.hpp"
#include "gateway/common/clock.h"
#include "gateway/dispatch/dispatcher.h"
#include "gateway/functions/function_table.h"
#include "gateway/lifecycle/lifecycle_config.h"
#include "gateway/lifecycle/lifecycle_policy.h"
#include "gateway/lifecycle/state_store.h"
#include "nlohmann/json.hpp"

namespace doze::gateway {

class LifecycleDriver {
 public:
  // Opens the state file (none: nothing persists), loads the ledger, archive marks and transitions.
  // `functions` and `clock` must outlive the driver.
  static absl::StatusOr<std::unique_ptr<LifecycleDriver>> Create(const lifecycle::LifecycleConfig& config,
                                                                 const FunctionTable* functions, Clock* clock,
                                                                 boost::asio::any_io_executor executor);
  ~LifecycleDriver();

  // Puts `function`'s dispatcher and supervisor under the policy, which must know it (it is in the
  // configuration the driver was created with); false, and nothing attached, when it does not.
  bool Attach(FunctionRuntime& function);

  // Applies a reloaded configuration: functions it drops leave the policy (their later events are ignored
  // and their ledger stops now), changed schedules apply from now, and `added` (the functions new in
  // `config`, not yet in any table) come under the policy and are put into `table` before any decision
  // about them is carried out.
  void Reconfigure(const lifecycle::LifecycleConfig& config,
                   const std::vector<std::shared_ptr<FunctionRuntime>>& added, FunctionTable* table);

  // Starts the policy loop: a first tick now (windows open, archive marks apply), then at each deadline.
  void Start();

  // Stops carrying out decisions (shutdown) and writes the ledger.
  void Shutdown();

  // Carries out an operator's start, stop, sleep or wake through the policy (LifecyclePolicy::Operate);
  // returns the function's lifecycle state afterwards.
  absl::StatusOr<std::string> Operate(const std::string& function, lifecycle::OperatorAction action);

  // Archives `function` by an operator's hand; returns its lifecycle state afterwards.
  absl::StatusOr<std::string> Archive(const std::string& function, const std::string& reason);

  // Restores an archived `function`; returns its lifecycle state afterwards.
  absl::StatusOr<std::string> Restore(const std::string& function);

  // Returns {"state", "since", "archived", "resident", "next_deadline", "transitions", "ledger"} of
  // `function`, or null when the policy does not know it.
  nlohmann::json StatusOf(const std::string& function);

  // Appends the ledger's counters and the lifecycle state of every function in Prometheus text.
  void RenderMetrics(std::string* out);

 private:
  class Attachment;

  LifecycleDriver(const lifecycle::LifecycleConfig& config, std::unique_ptr<lifecycle::StateStore> store,
                  std::unique_ptr<lifecycle::Ledger> ledger,
                  std::unique_ptr<lifecycle::LifecyclePolicy> policy, const FunctionTable* functions,
                  Clock* clock, boost::asio::any_io_executor executor);

  // Links `function`'s dispatcher and supervisor to a fresh attachment, the current one of its name.
  void AttachLocked(FunctionRuntime& function) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True while `attachment` is the current one of its function.
  bool IsCurrent(const Attachment& attachment) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The request events of an attachment's dispatcher (DispatchListener); stale attachments are ignored.
  absl::Status OnQueued(const Attachment& attachment);
  void OnStarted(const Attachment& attachment, absl::Time queued_at);
  void OnFinished(const Attachment& attachment);
  void OnAbandoned(const Attachment& attachment);
  bool CanDispatch(const Attachment& attachment);
  // A supervisor's transition; stale attachments are ignored.
  void OnWorkerTransition(const Attachment& attachment, const WorkerTransition& transition);
  // Reports a worker event to the policy (ignored for a function it does not know) and carries out the
  // decisions.
  void ReportWorkerEvent(const WorkerTransition& transition);
  // Carries out `decisions` (the mutex must not be held), then lets ready workers take their queues.
  void Apply(const std::vector<lifecycle::Decision>& decisions);
  void ApplyOne(const lifecycle::Decision& decision, FunctionRuntime& function);
  void OnTick();
  void ArmTimer() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs an operator's `change` of `function` under the lock, then carries out its decisions; returns the
  // function's lifecycle state afterwards.
  absl::StatusOr<std::string> ChangeBy(
      const std::string& function,
      absl::FunctionRef<absl::StatusOr<std::vector<lifecycle::Decision>>()> change);
  void FlushLedger() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  nlohmann::json LedgerJson(const std::string& function, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const FunctionTable* functions_;
  Clock* clock_;
  const std::string state_file_;
  std::unique_ptr<lifecycle::StateStore> store_;

  absl::Mutex mu_;
  lifecycle::BillingConfig billing_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<lifecycle::Ledger> ledger_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<lifecycle::LifecyclePolicy> policy_ ABSL_GUARDED_BY(mu_);
  // Every attachment ever made (dispatchers of removed functions may still call theirs), and the current
  // one of each function.
  std::vector<std::unique_ptr<Attachment>> attachments_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, const Attachment*> current_ ABSL_GUARDED_BY(mu_);
  boost::asio::steady_timer timer_ ABSL_GUARDED_BY(mu_);
  absl::Time timer_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace doze::gateway

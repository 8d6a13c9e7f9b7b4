// Moves one function's requests from its queue to its worker: it asks the supervisor for a worker when
// requests wait, dispatches up to max_in_flight calls once the worker is ready, retries once a request whose
// client has seen no output from a worker that died, and answers 503 when the queue is full, the wait passes
// queue_timeout, or the worker fails to start. Nothing blocks: requests wait on the queue, calls complete on
// gRPC's threads.
//
// A call that breaks (a retryable status) makes its worker suspect: the supervisor may not have seen the
// process exit yet and still call it ready, so nothing more is dispatched to that worker until it answers a
// health check SERVING. A dead worker never does; its successor is another client, to which the queue goes. A
// suspect that keeps failing its checks for unresponsive_timeout while requests wait is killed through the
// supervisor (a process that outlives its server would otherwise hold the queue until it exits).
//
// While calls are in flight their worker is asked for its health every liveness_check, and one that fails
// those checks for unresponsive_timeout is killed the same way: a process frozen mid-call (stopped, swapped
// out, its server wedged) would otherwise hold its calls, their clients and the queue for good. Its calls
// then break as a killed worker's do.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/steady_timer.hpp"
#include "gateway/common/clock.h"
#include "gateway/dispatch/failing_checks.h"
#include "gateway/dispatch/function_queue.h"
#include "gateway/dispatch/pending_request.h"
#include "gateway/ops/function_metrics.h"
#include "gateway/workers/worker_supervisor.h"

namespace doze::gateway {

// The limits of one function's dispatch.
struct DispatcherOptions {
  std::string function;
  int max_queue = 256;
  int max_in_flight = 256;
  absl::Duration queue_timeout = absl::Seconds(30);
  // How long after a failed health check a suspect worker is asked again while requests wait.
  absl::Duration suspect_recheck = absl::Milliseconds(100);
  absl::Duration unresponsive_timeout = absl::Seconds(10);
  // How often the worker is asked for its health while calls are in flight.
  absl::Duration liveness_check = absl::Seconds(1);
};

// Hears every request event of a dispatcher and decides when its worker may take requests; the lifecycle
// policy implements it. Called without the dispatcher's lock held.
class DispatchListener {
 public:
  virtual ~DispatchListener() = default;

  // A request is about to join `function`'s queue; a non-OK status is its answer instead (409 when archived).
  virtual absl::Status OnQueued(const std::string& function) = 0;

  // A request queued at `queued_at` was handed to the worker.
  virtual void OnStarted(const std::string& function, absl::Time queued_at) = 0;

  // A request on the worker ended: finished, failed or cancelled.
  virtual void OnFinished(const std::string& function) = 0;

  // A queued request left without reaching the worker (client gone, queue timeout, failed start, shutdown).
  virtual void OnAbandoned(const std::string& function) = 0;

  // True when requests of `function` may be handed to its worker now.
  virtual bool CanDispatch(const std::string& function) = 0;
};

class Dispatcher : public std::enable_shared_from_this<Dispatcher> {
 public:
  Dispatcher(DispatcherOptions options, std::shared_ptr<WorkerSupervisor> supervisor,
             std::shared_ptr<FunctionMetrics> metrics, Clock* clock, boost::asio::any_io_executor executor);

  // Subscribes to the supervisor's transitions; call once after construction.
  void Init();

  // Hands request events to `listener`, which then starts workers (the dispatcher no longer does); call
  // before the first Submit. `listener` must outlive the dispatcher.
  void set_listener(DispatchListener* listener) { listener_ = listener; }

  // Hands queued requests to the worker while it is ready and has room; asks for a worker without a listener.
  void Pump();

  // Queues `request` and asks for a worker; ResourceExhausted (503) at once when the queue is full.
  absl::Status Submit(std::shared_ptr<PendingRequest> request);

  // Returns the number of requests waiting.
  int queue_depth() const { return queue_.size(); }

  // Returns the number of requests running on the worker.
  int in_flight() const;

  // Returns when a request last arrived or ended.
  absl::Time last_activity() const;

  // Applies new limits (configuration reload).
  void UpdateOptions(int max_queue, int max_in_flight, absl::Duration queue_timeout,
                     absl::Duration unresponsive_timeout);

  // Answers every queued request with `status` (a failed start).
  void FailQueued(const absl::Status& status);

  // Answers every queued request with `status`, and every request that would queue from now on with it too
  // (a late Submit, the retry of a call its worker broke): the gateway is shutting down or the function was
  // removed, and nothing will serve the queue again.
  void Close(const absl::Status& status);

 private:
  class CallObserver;

  // Arms the queue timeout of `request` if it is still waiting in the queue.
  void ArmTimerIfQueued(const std::shared_ptr<PendingRequest>& request);
  void OnQueueTimeout(const std::shared_ptr<PendingRequest>& request);
  void DisarmTimer(const PendingRequest* request);
  void OnTransition(const WorkerTransition& transition);
  void StartCall(std::shared_ptr<PendingRequest> request, const std::shared_ptr<WorkerClient>& client);
  void OnCallDone(std::shared_ptr<PendingRequest> request, const absl::Status& status, bool finished,
                  const std::weak_ptr<WorkerClient>& client);
  // Whether `client` is suspect (nothing goes to it); asks it for its health when requests wait and no check
  // runs.
  bool HoldForSuspect(const std::shared_ptr<WorkerClient>& client);
  void OnSuspectChecked(const std::shared_ptr<WorkerClient>& client, bool serving);
  // Counts a health check of `client`; kills it through the supervisor once its checks have failed for
  // unresponsive_timeout (`why` goes into the reason).
  void KillIfUnresponsive(const std::shared_ptr<WorkerClient>& client, bool serving, const char* why);
  // Whether the liveness timer should start now (calls in flight, none running); marks it running.
  bool ClaimLivenessTimerLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartLivenessTimer();
  // The timer's end: asks the ready worker for its health, then starts the timer again while calls run.
  void CheckLiveness();
  void LivenessChecked();
  void Reject(const std::shared_ptr<PendingRequest>& request, const absl::Status& status);
  // Close's status, once closed.
  std::optional<absl::Status> ClosedStatus() const;
  // Tells the listener, if any, that a queued request left.
  void Abandoned();

  const std::string function_;
  std::shared_ptr<WorkerSupervisor> supervisor_;
  // Shared with the function's runtime: a call in flight when a reload removes the function still counts
  // into them after the runtime is gone.
  std::shared_ptr<FunctionMetrics> metrics_;
  Clock* clock_;
  boost::asio::any_io_executor executor_;
  FunctionQueue queue_;
  DispatchListener* listener_ = nullptr;

  mutable absl::Mutex mu_;
  int max_in_flight_ ABSL_GUARDED_BY(mu_);
  absl::Duration queue_timeout_ ABSL_GUARDED_BY(mu_);
  absl::Duration suspect_recheck_ ABSL_GUARDED_BY(mu_);
  std::weak_ptr<WorkerClient> suspect_ ABSL_GUARDED_BY(mu_);  // the worker whose call broke last
  bool checking_suspect_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration unresponsive_timeout_ ABSL_GUARDED_BY(mu_);
  FailingChecks failing_checks_ ABSL_GUARDED_BY(mu_);
  const absl::Duration liveness_check_;
  bool liveness_armed_ ABSL_GUARDED_BY(mu_) = false;  // a liveness timer or check is under way
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_activity_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> closed_ ABSL_GUARDED_BY(mu_);  // Close's status
  absl::flat_hash_map<const PendingRequest*, std::shared_ptr<boost::asio::steady_timer>> timers_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace doze::gateway

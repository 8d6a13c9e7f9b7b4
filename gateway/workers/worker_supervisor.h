// Runs one function's worker process through its states: start (spawn, wait for health SERVING), sleep, wake,
// stop, and failure with back-off (1 s doubling to 60 s) so that a crash loop cannot spin. The verbs are
// asynchronous and idempotent; policies (the default idle stop, the lifecycle schedule) drive them, and
// observers hear every transition. Thread-safe.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "boost/asio/any_io_executor.hpp"
#include "gateway/common/clock.h"
#include "gateway/workers/process_spawner.h"
#include "gateway/workers/worker_client.h"
#include "gateway/workers/worker_state.h"

namespace doze::gateway {

// How one function's worker is run.
struct SupervisorOptions {
  std::string function;
  SpawnSpec spawn;
  std::string address;                               // Where the worker listens ("unix:/tmp/doze/NAME.sock").
  absl::Duration start_timeout = absl::Seconds(60);  // also bounds a sleep and a wake
  absl::Duration stop_timeout = absl::Seconds(10);
  absl::Duration backoff_initial = absl::Seconds(1);
  absl::Duration backoff_max = absl::Seconds(60);
  absl::Duration health_interval = absl::Milliseconds(20);
};

// What /ops/status shows of a worker.
struct WorkerSnapshot {
  WorkerState state = WorkerState::kStopped;
  std::optional<pid_t> pid;
  absl::Time since;
  std::string last_error;
  int64_t cold_starts = 0;
  double last_cold_start_ms = 0;
  double median_cold_start_ms = 0;
  absl::Time next_start_allowed = absl::InfinitePast();
};

class WorkerSupervisor : public std::enable_shared_from_this<WorkerSupervisor> {
 public:
  using Observer = std::function<void(const WorkerTransition&)>;

  WorkerSupervisor(SupervisorOptions options, Spawner* spawner, WorkerClientFactory* clients, Clock* clock,
                   boost::asio::any_io_executor executor);

  // Starts the worker unless it runs; in back-off, schedules the start for when the back-off ends.
  void Start(const std::string& reason);

  // Stops the worker (SIGTERM to its group: it drains; SIGKILL after stop_timeout); a start waiting out the
  // back-off is cancelled.
  void Stop(const std::string& reason);

  // Asks a ready worker to release the GPU (Worker/Sleep).
  void Sleep(const std::string& reason);

  // Brings a sleeping worker back (Worker/Wake).
  void Wake(const std::string& reason);

  // Demand: makes the worker ready, whatever it is doing (start, wake, or restart after a stop).
  void EnsureReady(const std::string& reason);

  // The ready worker reached through `client` has stopped answering: it fails with `reason` (back-off as for
  // a crash) and its process is killed. Nothing when `client` is no longer the current worker's or it is not
  // ready.
  void FailUnresponsive(const std::shared_ptr<WorkerClient>& client, const std::string& reason);

  // Returns the current state.
  WorkerState state() const;

  // Returns the state, pid and start figures.
  WorkerSnapshot snapshot() const;

  // Returns the client of the ready worker, or nullptr when it is not ready.
  std::shared_ptr<WorkerClient> ready_client() const;

  // Returns the client of the running worker in any state with a process, or nullptr.
  std::shared_ptr<WorkerClient> client() const;

  // Adds a callback run (outside the lock) on every transition.
  void AddObserver(Observer observer);

  // Replaces how the next worker is spawned (configuration reload); the running one is left alone.
  void UpdateSpawnSpec(SpawnSpec spawn);

 private:
  // Changes state and returns the transition to announce once the lock is released.
  WorkerTransition SetState(WorkerState to, const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Announce(const std::vector<WorkerTransition>& transitions);
  void Spawn(const std::string& reason);
  void ProbeHealth(int incarnation);
  void OnHealth(int incarnation, bool serving);
  void OnExit(int incarnation, const std::string& reason);
  void OnStartTimeout(int incarnation);
  // Failure: records the reason, extends the back-off; the caller kills the process if one is left.
  WorkerTransition Fail(const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleStart(absl::Duration delay, const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string function_;
  Spawner* spawner_;
  WorkerClientFactory* clients_;
  Clock* clock_;
  boost::asio::any_io_executor executor_;

  mutable absl::Mutex mu_;
  SupervisorOptions options_ ABSL_GUARDED_BY(mu_);
  WorkerState state_ ABSL_GUARDED_BY(mu_) = WorkerState::kStopped;
  absl::Time since_ ABSL_GUARDED_BY(mu_);
  int incarnation_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<ChildProcess> child_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<WorkerClient> client_ ABSL_GUARDED_BY(mu_);
  absl::Time spawned_at_ ABSL_GUARDED_BY(mu_);
  absl::Time ready_at_ ABSL_GUARDED_BY(mu_);
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  absl::Duration backoff_ ABSL_GUARDED_BY(mu_);
  absl::Time next_start_allowed_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool start_scheduled_ ABSL_GUARDED_BY(mu_) = false;
  int stop_generation_ ABSL_GUARDED_BY(mu_) =
      0;  // Counts Stop calls; a start scheduled before one is dropped.
  int scheduled_generation_ ABSL_GUARDED_BY(mu_) = 0;  // stop_generation_ when the scheduled start was.
  bool restart_after_stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<double> cold_start_ms_ ABSL_GUARDED_BY(mu_);
  std::vector<Observer> observers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace doze::gateway

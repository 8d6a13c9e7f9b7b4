#include "gateway/workers/worker_supervisor.h"

#include <signal.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "gateway/common/run_after.h"
#include "worker/common/logging.h"

namespace doze::gateway {
namespace {

namespace net = boost::asio;

// A worker that stayed up this long before dying starts its back-off afresh.
constexpr absl::Duration kStableUptime = absl::Seconds(60);

bool HasProcess(WorkerState state) {
  return state == WorkerState::kStarting || state == WorkerState::kReady || state == WorkerState::kSleeping ||
         state == WorkerState::kWaking || state == WorkerState::kStopping;
}

}  // namespace

WorkerSupervisor::WorkerSupervisor(SupervisorOptions options, Spawner* spawner, WorkerClientFactory* clients,
                                   Clock* clock, net::any_io_executor executor)
    : function_(options.function),
      spawner_(spawner),
      clients_(clients),
      clock_(clock),
      executor_(std::move(executor)),
      options_(std::move(options)) {
  since_ = clock_->Now();
  backoff_ = options_.backoff_initial;
}

WorkerTransition WorkerSupervisor::SetState(WorkerState to, const std::string& reason) {
  WorkerTransition transition{function_, state_, to, reason, clock_->Now()};
  state_ = to;
  since_ = transition.time;
  DOZE_LOG(INFO) << "worker " << function_ << ": " << WorkerStateName(transition.from) << " -> "
                 << WorkerStateName(to) << " (" << reason << ")";
  return transition;
}

void WorkerSupervisor::Announce(const std::vector<WorkerTransition>& transitions) {
  std::vector<Observer> observers;
  {
    absl::MutexLock lock(&mu_);
    observers = observers_;
  }
  for (const WorkerTransition& transition : transitions) {
    for (const Observer& observer : observers) observer(transition);
  }
}

void WorkerSupervisor::Start(const std::string& reason) {
  {
    absl::MutexLock lock(&mu_);
    if (state_ == WorkerState::kStopping) {
      restart_after_stop_ = true;
      return;
    }
    if (HasProcess(state_)) return;
    absl::Time now = clock_->Now();
    if (now < next_start_allowed_) return ScheduleStart(next_start_allowed_ - now, reason);
  }
  Spawn(reason);
}

void WorkerSupervisor::ScheduleStart(absl::Duration delay, const std::string& reason) {
  // One scheduled start at a time; a Stop cancels it, so one asked for after the Stop is scheduled afresh.
  if (start_scheduled_ && scheduled_generation_ == stop_generation_) return;
  start_scheduled_ = true;
  scheduled_generation_ = stop_generation_;
  RunAfter(executor_, delay, [self = shared_from_this(), reason, generation = stop_generation_] {
    {
      absl::MutexLock lock(&self->mu_);
      if (self->stop_generation_ != generation) return;
      self->start_scheduled_ = false;
    }
    self->Start(reason);
  });
}

void WorkerSupervisor::Spawn(const std::string& reason) {
  std::vector<WorkerTransition> transitions;
  int incarnation = 0;
  {
    absl::MutexLock lock(&mu_);
    if (HasProcess(state_)) return;
    incarnation = ++incarnation_;
    auto self = shared_from_this();
    absl::StatusOr<std::shared_ptr<ChildProcess>> child = spawner_->Spawn(
        options_.spawn,
        [self, incarnation](std::string exit_reason) { self->OnExit(incarnation, exit_reason); });
    if (!child.ok()) {
      transitions.push_back(SetState(WorkerState::kStarting, reason));
      transitions.push_back(Fail(absl::StrCat("worker failed to start: ", child.status().message())));
    } else {
      child_ = *child;
      client_ = clients_->Connect(options_.address);
      spawned_at_ = clock_->Now();
      transitions.push_back(SetState(WorkerState::kStarting, reason));
      RunAfter(executor_, options_.start_timeout, [self, incarnation] { self->OnStartTimeout(incarnation); });
    }
  }
  Announce(transitions);
  if (state() == WorkerState::kStarting) ProbeHealth(incarnation);
}

void WorkerSupervisor::ProbeHealth(int incarnation) {
  std::shared_ptr<WorkerClient> client;
  absl::Duration interval;
  {
    absl::MutexLock lock(&mu_);
    if (incarnation != incarnation_ || state_ != WorkerState::kStarting) return;
    client = client_;
    interval = options_.health_interval;
  }
  auto self = shared_from_this();
  client->CheckHealth(absl::Seconds(1), [self, incarnation, interval](bool serving) {
    if (serving) return self->OnHealth(incarnation, true);
    RunAfter(self->executor_, interval, [self, incarnation] { self->ProbeHealth(incarnation); });
  });
}

void WorkerSupervisor::OnHealth(int incarnation, bool serving) {
  std::vector<WorkerTransition> transitions;
  {
    absl::MutexLock lock(&mu_);
    if (!serving || incarnation != incarnation_ || state_ != WorkerState::kStarting) return;
    ready_at_ = clock_->Now();
    double cold_start_ms = absl::ToDoubleMilliseconds(ready_at_ - spawned_at_);
    cold_start_ms_.push_back(cold_start_ms);
    transitions.push_back(SetState(
        WorkerState::kReady, absl::StrCat("SERVING after ", static_cast<int64_t>(cold_start_ms), " ms")));
  }
  Announce(transitions);
}

void WorkerSupervisor::OnStartTimeout(int incarnation) {
  std::vector<WorkerTransition> transitions;
  std::shared_ptr<ChildProcess> child;
  {
    absl::MutexLock lock(&mu_);
    if (incarnation != incarnation_ || state_ != WorkerState::kStarting) return;
    transitions.push_back(Fail(
        absl::StrCat("worker did not become SERVING within ", absl::FormatDuration(options_.start_timeout))));
    child = std::move(child_);
  }
  if (child) child->Signal(SIGKILL);
  Announce(transitions);
}

void WorkerSupervisor::OnExit(int incarnation, const std::string& reason) {
  std::vector<WorkerTransition> transitions;
  bool restart = false;
  {
    absl::MutexLock lock(&mu_);
    if (incarnation != incarnation_) return;
    child_.reset();
    client_.reset();
    if (state_ == WorkerState::kStopping) {
      transitions.push_back(SetState(WorkerState::kStopped, absl::StrCat("worker ", reason)));
      restart = std::exchange(restart_after_stop_, false);
    } else if (state_ != WorkerState::kFailed) {
      bool starting = state_ == WorkerState::kStarting;
      if (!starting && clock_->Now() - ready_at_ >= kStableUptime) backoff_ = options_.backoff_initial;
      transitions.push_back(
          Fail(absl::StrCat(starting ? "worker failed to start: " : "worker died: ", reason)));
    }
  }
  Announce(transitions);
  if (restart) Start("restart requested while stopping");
}

void WorkerSupervisor::FailUnresponsive(const std::shared_ptr<WorkerClient>& client,
                                        const std::string& reason) {
  std::vector<WorkerTransition> transitions;
  std::shared_ptr<ChildProcess> child;
  {
    absl::MutexLock lock(&mu_);
    if (client == nullptr || client_ != client || state_ != WorkerState::kReady) return;
    transitions.push_back(Fail(reason));
    child = std::move(child_);
  }
  if (child) child->Signal(SIGKILL);
  Announce(transitions);
}

WorkerTransition WorkerSupervisor::Fail(const std::string& reason) {
  last_error_ = reason;
  next_start_allowed_ = clock_->Now() + backoff_;
  backoff_ = std::min(backoff_ * 2, options_.backoff_max);
  client_.reset();
  return SetState(WorkerState::kFailed, reason);
}

void WorkerSupervisor::Stop(const std::string& reason) {
  std::vector<WorkerTransition> transitions;
  std::shared_ptr<ChildProcess> child;
  int incarnation = 0;
  absl::Duration stop_timeout;
  {
    absl::MutexLock lock(&mu_);
    restart_after_stop_ = false;
    ++stop_generation_;
    if (!HasProcess(state_) || state_ == WorkerState::kStopping) return;
    transitions.push_back(SetState(WorkerState::kStopping, reason));
    child = child_;
    incarnation = incarnation_;
    stop_timeout = options_.stop_timeout;
  }
  Announce(transitions);
  if (!child) return;
  child->Signal(SIGTERM);
  RunAfter(executor_, stop_timeout, [self = shared_from_this(), child, incarnation] {
    absl::MutexLock lock(&self->mu_);
    if (self->incarnation_ == incarnation && self->state_ == WorkerState::kStopping) child->Signal(SIGKILL);
  });
}

void WorkerSupervisor::Sleep(const std::string& reason) {
  std::shared_ptr<WorkerClient> client;
  int incarnation = 0;
  {
    absl::MutexLock lock(&mu_);
    if (state_ != WorkerState::kReady) return;
    client = client_;
    incarnation = incarnation_;
  }
  // A sleep or wake moves the weights between host and GPU: bounded by start_timeout, as a start is.
  client->Sleep(options_.start_timeout,
                [self = shared_from_this(), incarnation, reason](absl::Status status) {
                  std::vector<WorkerTransition> transitions;
                  {
                    absl::MutexLock lock(&self->mu_);
                    if (incarnation != self->incarnation_ || self->state_ != WorkerState::kReady) return;
                    if (!status.ok()) {
                      DOZE_LOG(WARNING) << "worker " << self->function_ << ": sleep failed: " << status;
                      return;
                    }
                    transitions.push_back(self->SetState(WorkerState::kSleeping, reason));
                  }
                  self->Announce(transitions);
                });
}

void WorkerSupervisor::Wake(const std::string& reason) {
  std::shared_ptr<WorkerClient> client;
  std::vector<WorkerTransition> transitions;
  int incarnation = 0;
  {
    absl::MutexLock lock(&mu_);
    if (state_ != WorkerState::kSleeping) return;
    client = client_;
    incarnation = incarnation_;
    transitions.push_back(SetState(WorkerState::kWaking, reason));
  }
  Announce(transitions);
  client->Wake(options_.start_timeout, [self = shared_from_this(), incarnation](absl::Status status) {
    std::vector<WorkerTransition> done;
    std::shared_ptr<ChildProcess> child;
    {
      absl::MutexLock lock(&self->mu_);
      if (incarnation != self->incarnation_ || self->state_ != WorkerState::kWaking) return;
      if (status.ok()) {
        done.push_back(self->SetState(WorkerState::kReady, "awake"));
      } else {
        done.push_back(self->Fail(absl::StrCat("worker failed to wake: ", status.message())));
        child = std::move(self->child_);
      }
    }
    if (child) child->Signal(SIGKILL);
    self->Announce(done);
  });
}

void WorkerSupervisor::EnsureReady(const std::string& reason) {
  WorkerState current = state();
  if (current == WorkerState::kSleeping) return Wake(reason);
  if (current == WorkerState::kStopping) {
    absl::MutexLock lock(&mu_);
    restart_after_stop_ = true;
    return;
  }
  if (current == WorkerState::kStopped || current == WorkerState::kFailed) Start(reason);
}

WorkerState WorkerSupervisor::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

WorkerSnapshot WorkerSupervisor::snapshot() const {
  absl::MutexLock lock(&mu_);
  WorkerSnapshot snapshot;
  snapshot.state = state_;
  if (child_) snapshot.pid = child_->pid();
  snapshot.since = since_;
  snapshot.last_error = last_error_;
  snapshot.cold_starts = static_cast<int64_t>(cold_start_ms_.size());
  if (!cold_start_ms_.empty()) {
    snapshot.last_cold_start_ms = cold_start_ms_.back();
    std::vector<double> sorted = cold_start_ms_;
    std::sort(sorted.begin(), sorted.end());
    size_t mid = sorted.size() / 2;
    snapshot.median_cold_start_ms = sorted.size() % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  }
  snapshot.next_start_allowed = next_start_allowed_;
  return snapshot;
}

std::shared_ptr<WorkerClient> WorkerSupervisor::ready_client() const {
  absl::MutexLock lock(&mu_);
  return state_ == WorkerState::kReady ? client_ : nullptr;
}

std::shared_ptr<WorkerClient> WorkerSupervisor::client() const {
  absl::MutexLock lock(&mu_);
  return client_;
}

void WorkerSupervisor::AddObserver(Observer observer) {
  absl::MutexLock lock(&mu_);
  observers_.push_back(std::move(observer));
}

void WorkerSupervisor::UpdateSpawnSpec(SpawnSpec spawn) {
  absl::MutexLock lock(&mu_);
  options_.spawn = std::move(spawn);
}

}  // namespace doze::gateway

#include "gateway/workers/lifecycle_driver.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gateway/lifecycle/cost_summary.h"
#include "gateway/openai/api_error.h"
#include "worker/common/logging.h"
#include "worker/common/status_macros.h"

namespace doze::gateway {
namespace {

namespace net = boost::asio;
using lifecycle::Action;
using lifecycle::Decision;
using lifecycle::FunctionState;
using lifecycle::WorkerEvent;

// The loop ticks at the policy's next deadline, and at least this often to settle and flush the ledger.
constexpr absl::Duration kMaxTickInterval = absl::Seconds(1);
// How many of the last transitions /ops/status shows per function.
constexpr size_t kStatusTransitions = 10;

std::string Rfc3339(absl::Time time) {
  return absl::FormatTime(absl::RFC3339_full, time, absl::UTCTimeZone());
}

absl::StatusOr<std::unique_ptr<lifecycle::StateStore>> OpenStore(const std::string& path) {
  if (path.empty()) return lifecycle::StateStore::Open(":memory:");
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code error;
  if (!parent.empty()) std::filesystem::create_directories(parent, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("state_file: cannot create ", parent.string(), ": ", error.message()));
  }
  absl::StatusOr<std::unique_ptr<lifecycle::StateStore>> store = lifecycle::StateStore::Open(path);
  if (!store.ok())
    return absl::FailedPreconditionError(absl::StrCat("state_file: ", store.status().message()));
  return store;
}

// Prometheus label values escape backslash, double quote and newline.
std::string Label(const std::string& value) {
  std::string escaped;
  for (char c : value) {
    if (c == '\n') {
      escaped += "\\n";
      continue;
    }
    if (c == '\\' || c == '"') escaped += '\\';
    escaped += c;
  }
  return escaped;
}

}  // namespace

// One function's dispatcher and supervisor as the driver hears them. A reload that removes the function (or
// replaces it under the same name) makes the attachment stale, and the driver drops what it still reports.
class LifecycleDriver::Attachment : public DispatchListener {
 public:
  Attachment(LifecycleDriver* driver, std::string function)
      : driver_(driver), function_(std::move(function)) {}

  const std::string& function() const { return function_; }

  absl::Status OnQueued(const std::string&) override { return driver_->OnQueued(*this); }
  void OnStarted(const std::string&, absl::Time queued_at) override { driver_->OnStarted(*this, queued_at); }
  void OnFinished(const std::string&) override { driver_->OnFinished(*this); }
  void OnAbandoned(const std::string&) override { driver_->OnAbandoned(*this); }
  bool CanDispatch(const std::string&) override { return driver_->CanDispatch(*this); }

 private:
  LifecycleDriver* driver_;
  const std::string function_;
};

absl::StatusOr<std::unique_ptr<LifecycleDriver>> LifecycleDriver::Create(
    const lifecycle::LifecycleConfig& config, const FunctionTable* functions, Clock* clock,
    net::any_io_executor executor) {
  ASSIGN_OR_RETURN(std::unique_ptr<lifecycle::StateStore> store, OpenStore(config.state_file));
  auto ledger = std::make_unique<lifecycle::Ledger>(store.get());
  ledger->SetGpuHourPrice(config.billing.gpu_hour_price);  // before Load: it prices hours stored without one
  RETURN_IF_ERROR(ledger->Load());
  auto policy = std::make_unique<lifecycle::LifecyclePolicy>(config, clock, ledger.get(), store.get());
  RETURN_IF_ERROR(policy->Load());
  return std::unique_ptr<LifecycleDriver>(new LifecycleDriver(
      config, std::move(store), std::move(ledger), std::move(policy), functions, clock, std::move(executor)));
}

LifecycleDriver::LifecycleDriver(const lifecycle::LifecycleConfig& config,
                                 std::unique_ptr<lifecycle::StateStore> store,
                                 std::unique_ptr<lifecycle::Ledger> ledger,
                                 std::unique_ptr<lifecycle::LifecyclePolicy> policy,
                                 const FunctionTable* functions, Clock* clock, net::any_io_executor executor)
    : functions_(functions),
      clock_(clock),
      state_file_(config.state_file),
      store_(std::move(store)),
      billing_(config.billing),
      ledger_(std::move(ledger)),
      policy_(std::move(policy)),
      timer_(std::move(executor)) {}

LifecycleDriver::~LifecycleDriver() {
  absl::MutexLock lock(&mu_);
  FlushLedger();
}

bool LifecycleDriver::Attach(FunctionRuntime& function) {
  absl::MutexLock lock(&mu_);
  if (!policy_->Has(function.name())) {
    DOZE_LOG(ERROR) << "lifecycle: " << function.name() << " is not in the lifecycle configuration";
    return false;
  }
  AttachLocked(function);
  return true;
}

void LifecycleDriver::AttachLocked(FunctionRuntime& function) {
  attachments_.push_back(std::make_unique<Attachment>(this, function.name()));
  const Attachment* attachment = attachments_.back().get();
  current_[function.name()] = attachment;
  function.dispatcher().set_listener(attachments_.back().get());
  function.supervisor().AddObserver([this, attachment](const WorkerTransition& transition) {
    OnWorkerTransition(*attachment, transition);
  });
}

bool LifecycleDriver::IsCurrent(const Attachment& attachment) const {
  auto it = current_.find(attachment.function());
  return it != current_.end() && it->second == &attachment;
}

void LifecycleDriver::Reconfigure(const lifecycle::LifecycleConfig& config,
                                  const std::vector<std::shared_ptr<FunctionRuntime>>& added,
                                  FunctionTable* table) {
  if (config.state_file != state_file_) {
    DOZE_LOG(WARNING) << "lifecycle: state_file changed to \"" << config.state_file
                      << "\"; it takes effect when the gateway restarts";
  }
  std::vector<Decision> decisions;
  {
    absl::MutexLock lock(&mu_);
    // Hours so far keep the price they had: the new one applies from now on (a cost counter never falls).
    ledger_->Settle(clock_->Now());
    ledger_->SetGpuHourPrice(config.billing.gpu_hour_price);
    billing_ = config.billing;
    for (auto it = current_.begin(); it != current_.end();) {
      it = config.functions.contains(it->first) ? std::next(it) : current_.erase(it);
    }
    decisions = policy_->Reconfigure(config);
    // Attached and in the table under the lock, so that no tick decides about a function not yet there.
    for (const std::shared_ptr<FunctionRuntime>& function : added) {
      if (policy_->Has(function->name())) {
        AttachLocked(*function);
      } else {
        DOZE_LOG(ERROR) << "lifecycle: " << function->name() << " is not in the lifecycle configuration";
      }
      table->Put(function);
    }
    FlushLedger();
    ArmTimer();
  }
  Apply(decisions);
}

void LifecycleDriver::Start() { OnTick(); }

void LifecycleDriver::Shutdown() {
  absl::MutexLock lock(&mu_);
  stopped_ = true;
  timer_.cancel();
  FlushLedger();
}

void LifecycleDriver::FlushLedger() {
  ledger_->Settle(clock_->Now());
  absl::Status flushed = ledger_->Flush();
  if (!flushed.ok()) {
    DOZE_LOG(ERROR) << "lifecycle: writing the ledger: " << flushed;
  }
}

void LifecycleDriver::OnTick() {
  std::vector<Decision> decisions;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    timer_at_ = absl::InfiniteFuture();
    decisions = policy_->Tick();
    FlushLedger();
    ArmTimer();
  }
  Apply(decisions);
}

void LifecycleDriver::ArmTimer() {
  if (stopped_) return;
  const absl::Time now = clock_->Now();
  const absl::Time at = std::max(now, std::min(policy_->NextDeadline(), now + kMaxTickInterval));
  if (at >= timer_at_) return;
  timer_at_ = at;
  timer_.expires_after(absl::ToChronoNanoseconds(at - now));
  timer_.async_wait([this](boost::system::error_code error) {
    if (!error) OnTick();
  });
}

absl::Status LifecycleDriver::OnQueued(const Attachment& attachment) {
  const std::string& function = attachment.function();
  std::vector<Decision> decisions;
  {
    absl::MutexLock lock(&mu_);
    if (!IsCurrent(attachment)) {
      return absl::NotFoundError(absl::StrCat("function ", function, " was removed from the configuration"));
    }
    decisions = policy_->OnRequestQueued(function);
    ArmTimer();
  }
  bool rejected = false;
  for (const Decision& decision : decisions) rejected |= decision.action == Action::kReject;
  Apply(decisions);
  if (rejected) {
    return absl::FailedPreconditionError(
        absl::StrCat("function ", function, " is archived; an operator must restore it (POST /ops/functions/",
                     function, "/restore)"));
  }
  return absl::OkStatus();
}

void LifecycleDriver::OnStarted(const Attachment& attachment, absl::Time queued_at) {
  absl::MutexLock lock(&mu_);
  if (IsCurrent(attachment)) policy_->OnRequestStarted(attachment.function(), queued_at);
}

void LifecycleDriver::OnFinished(const Attachment& attachment) {
  std::vector<Decision> decisions;
  {
    absl::MutexLock lock(&mu_);
    if (!IsCurrent(attachment)) return;
    decisions = policy_->OnRequestFinished(attachment.function());
    ArmTimer();
  }
  Apply(decisions);
}

void LifecycleDriver::OnAbandoned(const Attachment& attachment) {
  std::vector<Decision> decisions;
  {
    absl::MutexLock lock(&mu_);
    if (!IsCurrent(attachment)) return;
    decisions = policy_->OnRequestAbandoned(attachment.function());
    ArmTimer();
  }
  Apply(decisions);
}

bool LifecycleDriver::CanDispatch(const Attachment& attachment) {
  absl::MutexLock lock(&mu_);
  return IsCurrent(attachment) && policy_->CanDispatch(attachment.function());
}

void LifecycleDriver::OnWorkerTransition(const Attachment& attachment, const WorkerTransition& transition) {
  {
    absl::MutexLock lock(&mu_);
    if (!IsCurrent(attachment)) return;
  }
  ReportWorkerEvent(transition);
}

void LifecycleDriver::ReportWorkerEvent(const WorkerTransition& transition) {
  WorkerEvent event;
  if (transition.to == WorkerState::kReady) {
    event = WorkerEvent::kReady;
  } else if (transition.to == WorkerState::kStopped) {
    event = WorkerEvent::kStopped;
  } else if (transition.to == WorkerState::kFailed) {
    event = WorkerEvent::kFailed;
  } else {
    return;
  }
  std::vector<Decision> decisions;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_ || !policy_->Has(transition.function)) return;
    decisions = policy_->OnWorkerEvent(transition.function, event, transition.reason);
    ArmTimer();
  }
  Apply(decisions);
  if (std::shared_ptr<FunctionRuntime> function = functions_->Find(transition.function)) {
    function->dispatcher().Pump();
  }
}

void LifecycleDriver::Apply(const std::vector<Decision>& decisions) {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
  }
  for (const Decision& decision : decisions) {
    DOZE_LOG(INFO) << "lifecycle: " << lifecycle::ActionName(decision.action) << " " << decision.function
                   << ": " << decision.reason;
    std::shared_ptr<FunctionRuntime> function = functions_->Find(decision.function);
    if (function != nullptr) ApplyOne(decision, *function);
  }
}

void LifecycleDriver::ApplyOne(const Decision& decision, FunctionRuntime& function) {
  WorkerSupervisor& supervisor = function.supervisor();
  const std::string reason = absl::StrCat("lifecycle: ", decision.reason);
  switch (decision.action) {
    case Action::kStart:
    case Action::kWake:
      supervisor.EnsureReady(reason);
      // Already serving (an operator started it): no transition will come, so report it here.
      if (supervisor.state() == WorkerState::kReady) {
        ReportWorkerEvent({function.name(), WorkerState::kReady, WorkerState::kReady, reason, clock_->Now()});
      }
      break;
    case Action::kStop:
      supervisor.Stop(reason);
      if (supervisor.state() == WorkerState::kStopped) {
        ReportWorkerEvent(
            {function.name(), WorkerState::kStopped, WorkerState::kStopped, reason, clock_->Now()});
      }
      break;
    case Action::kSleep:
      supervisor.Sleep(reason);
      break;
    case Action::kReject:
      function.dispatcher().FailQueued(absl::FailedPreconditionError(
          absl::StrCat("function ", function.name(), " is archived; an operator must restore it")));
      break;
    case Action::kArchive:
    case Action::kRestore:
      break;
  }
}

absl::StatusOr<std::string> LifecycleDriver::Operate(const std::string& function,
                                                     lifecycle::OperatorAction action) {
  return ChangeBy(function, [&] { return policy_->Operate(function, action); });
}

absl::StatusOr<std::string> LifecycleDriver::Archive(const std::string& function, const std::string& reason) {
  return ChangeBy(function, [&] { return policy_->Archive(function, reason); });
}

absl::StatusOr<std::string> LifecycleDriver::Restore(const std::string& function) {
  return ChangeBy(function, [&] { return policy_->Restore(function); });
}

absl::StatusOr<std::string> LifecycleDriver::ChangeBy(
    const std::string& function, absl::FunctionRef<absl::StatusOr<std::vector<Decision>>()> change) {
  std::vector<Decision> decisions;
  std::string state;
  {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(decisions, change());
    state = lifecycle::FunctionStateName(policy_->StateOf(function));
    ArmTimer();
  }
  Apply(decisions);
  return state;
}

nlohmann::json LifecycleDriver::LedgerJson(const std::string& function, absl::Time now) {
  ledger_->Settle(now);
  const absl::Time since = ledger_->TrackingSince(function);
  lifecycle::LedgerTotals totals;
  if (since < now) totals = ledger_->Totals(function, since, now + absl::Hours(1));
  nlohmann::json json = lifecycle::CostSummaryToJson(lifecycle::Summarize(totals, billing_.gpu_hour_price));
  json["gpu_seconds"] = {
      {"busy", totals.busy_s}, {"idle", totals.idle_s}, {"warming", totals.warming_s}, {"off", totals.off_s}};
  json["currency"] = billing_.currency;
  json["tracking_since"] = since < now ? nlohmann::json(Rfc3339(since)) : nlohmann::json(nullptr);
  return json;
}

nlohmann::json LifecycleDriver::StatusOf(const std::string& function) {
  absl::MutexLock lock(&mu_);
  if (!policy_->Has(function)) return nullptr;
  const absl::Time now = clock_->Now();
  for (const lifecycle::FunctionStatus& status : policy_->Status()) {
    if (status.name != function) continue;
    nlohmann::json transitions = nlohmann::json::array();
    size_t first =
        status.transitions.size() > kStatusTransitions ? status.transitions.size() - kStatusTransitions : 0;
    for (size_t i = first; i < status.transitions.size(); ++i) {
      const lifecycle::Transition& t = status.transitions[i];
      transitions.push_back({{"at", Rfc3339(t.at)},
                             {"from", lifecycle::FunctionStateName(t.from)},
                             {"to", lifecycle::FunctionStateName(t.to)},
                             {"reason", t.reason}});
    }
    return {{"state", lifecycle::FunctionStateName(status.state)},
            {"since", Rfc3339(status.since)},
            {"archived", status.archived},
            {"resident", status.resident},
            {"next_deadline", status.next_deadline == absl::InfiniteFuture()
                                  ? nlohmann::json(nullptr)
                                  : nlohmann::json(Rfc3339(status.next_deadline))},
            {"transitions", transitions},
            {"ledger", LedgerJson(function, now)}};
  }
  return nullptr;
}

void LifecycleDriver::RenderMetrics(std::string* out) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  ledger_->Settle(now);
  std::string gpu, cold, cost, state;
  for (const lifecycle::FunctionStatus& status : policy_->Status()) {
    const std::string label = absl::StrCat("function=\"", Label(status.name), "\"");
    const absl::Time since = ledger_->TrackingSince(status.name);
    lifecycle::LedgerTotals totals;
    if (since < now) totals = ledger_->Totals(status.name, since, now + absl::Hours(1));
    for (const auto& [use, seconds] : {std::pair<const char*, double>{"busy", totals.busy_s},
                                       {"idle", totals.idle_s},
                                       {"warming", totals.warming_s},
                                       {"off", totals.off_s}}) {
      absl::StrAppend(&gpu, "doze_gpu_seconds_total{", label, ",use=\"", use, "\"} ", seconds, "\n");
    }
    absl::StrAppend(&cold, "doze_lifecycle_cold_starts_total{", label, "} ", totals.cold_starts, "\n");
    lifecycle::CostSummary summary = lifecycle::Summarize(totals, billing_.gpu_hour_price);
    absl::StrAppend(&cost, "doze_gpu_cost_total{", label, ",currency=\"", Label(billing_.currency), "\"} ",
                    summary.cost, "\n");
    for (FunctionState s : {FunctionState::kArchived, FunctionState::kStopped, FunctionState::kStarting,
                            FunctionState::kReady, FunctionState::kSleeping, FunctionState::kWaking,
                            FunctionState::kDraining, FunctionState::kFailed}) {
      absl::StrAppend(&state, "doze_lifecycle_state{", label, ",state=\"", lifecycle::FunctionStateName(s),
                      "\"} ", s == status.state ? 1 : 0, "\n");
    }
  }
  absl::StrAppend(out, "# HELP doze_gpu_seconds_total GPU seconds held by the function's worker, by use.\n",
                  "# TYPE doze_gpu_seconds_total counter\n", gpu,
                  "# HELP doze_lifecycle_cold_starts_total Starts and wakes that a request waited for.\n",
                  "# TYPE doze_lifecycle_cold_starts_total counter\n", cold,
                  "# HELP doze_gpu_cost_total What the billed GPU seconds cost at billing.gpu_hour_price.\n",
                  "# TYPE doze_gpu_cost_total counter\n", cost,
                  "# HELP doze_lifecycle_state 1 for the lifecycle state the function is in.\n",
                  "# TYPE doze_lifecycle_state gauge\n", state);
}

}  // namespace doze::gateway

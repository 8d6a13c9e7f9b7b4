#include "gateway/lifecycle/simulator.h"

#include <deque>
#include <queue>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "gateway/common/clock.h"
#include "gateway/lifecycle/ledger.h"
#include "gateway/lifecycle/lifecycle_policy.h"

namespace doze::lifecycle {
namespace {

struct QueuedRequest {
  absl::Time queued_at;
  absl::Duration service;
};

struct SimFunction {
  std::string name;
  std::deque<QueuedRequest> queue;
  absl::Time ready_at = absl::InfiniteFuture();  // When a pending start or wake completes.
};

struct Completion {
  absl::Time at;
  int function;
  bool operator>(const Completion& other) const { return at > other.at; }
};

// The simulated gateway: queues, the supervisor's verbs on the service-time model, and the policy.
class Replay {
 public:
  Replay(const LifecycleConfig& config, std::vector<SimFunction> functions, absl::Time start)
      : model_(config.simulation),
        functions_(std::move(functions)),
        clock_(start),
        policy_(config, &clock_, &ledger_) {
    ledger_.SetGpuHourPrice(config.billing.gpu_hour_price);
  }

  absl::Status Run(const Trace& trace, absl::Time end, int64_t* rejected);
  LedgerTotals Totals(int function, absl::Time start, absl::Time end) const {
    return ledger_.Totals(functions_[function].name, start, end);
  }

 private:
  absl::Time NextEventTime(const Trace& trace, size_t next) const;
  void Apply(const std::vector<Decision>& decisions);
  void Dispatch(int function);
  int IndexOf(const std::string& name) const;

  SimulationModel model_;
  std::vector<SimFunction> functions_;
  gateway::FakeClock clock_;
  Ledger ledger_;
  LifecyclePolicy policy_;
  std::priority_queue<Completion, std::vector<Completion>, std::greater<>> completions_;
  int64_t rejected_ = 0;
};

int Replay::IndexOf(const std::string& name) const {
  for (size_t i = 0; i < functions_.size(); ++i) {
    if (functions_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

absl::Time Replay::NextEventTime(const Trace& trace, size_t next) const {
  absl::Time t = policy_.NextDeadline();
  if (next < trace.requests.size()) t = std::min(t, trace.requests[next].at);
  if (!completions_.empty()) t = std::min(t, completions_.top().at);
  for (const SimFunction& f : functions_) t = std::min(t, f.ready_at);
  return t;
}

void Replay::Apply(const std::vector<Decision>& decisions) {
  const absl::Time now = clock_.Now();
  for (const Decision& decision : decisions) {
    SimFunction& f = functions_[IndexOf(decision.function)];
    switch (decision.action) {
      case Action::kStart:
        f.ready_at = now + model_.cold_start;
        break;
      case Action::kWake:
        f.ready_at = now + model_.wake;
        break;
      case Action::kStop:  // Nothing is in flight when a stop goes out, so the process ends at once.
        Apply(policy_.OnWorkerEvent(f.name, WorkerEvent::kStopped, ""));
        break;
      case Action::kReject:
        rejected_ += static_cast<int64_t>(f.queue.size());
        f.queue.clear();
        break;
      case Action::kSleep:
      case Action::kArchive:
      case Action::kRestore:
        break;
    }
  }
}

void Replay::Dispatch(int function) {
  SimFunction& f = functions_[function];
  if (f.queue.empty() || !policy_.CanDispatch(f.name)) return;
  const absl::Time now = clock_.Now();
  while (!f.queue.empty()) {
    policy_.OnRequestStarted(f.name, f.queue.front().queued_at);
    completions_.push({now + f.queue.front().service, function});
    f.queue.pop_front();
  }
}

absl::Status Replay::Run(const Trace& trace, absl::Time end, int64_t* rejected) {
  std::vector<int> to_sim(trace.functions.size());
  for (size_t i = 0; i < trace.functions.size(); ++i) to_sim[i] = IndexOf(trace.functions[i]);
  Apply(policy_.Tick());
  size_t next = 0;
  for (absl::Time t = NextEventTime(trace, next); t < end; t = NextEventTime(trace, next)) {
    if (t < clock_.Now()) return absl::InternalError("simulation: an event lies in the past");
    clock_.Advance(t - clock_.Now());
    while (!completions_.empty() && completions_.top().at <= t) {
      const int function = completions_.top().function;
      completions_.pop();
      Apply(policy_.OnRequestFinished(functions_[function].name));
    }
    for (size_t i = 0; i < functions_.size(); ++i) {
      if (functions_[i].ready_at > t) continue;
      functions_[i].ready_at = absl::InfiniteFuture();
      Apply(policy_.OnWorkerEvent(functions_[i].name, WorkerEvent::kReady, ""));
      Dispatch(static_cast<int>(i));
    }
    for (; next < trace.requests.size() && trace.requests[next].at <= t; ++next) {
      const TraceRequest& request = trace.requests[next];
      const int function = to_sim[request.function];
      const double service_s = request.prompt_tokens / model_.prefill_tokens_per_s +
                               request.completion_tokens / model_.decode_tokens_per_s;
      functions_[function].queue.push_back({t, absl::Seconds(service_s)});
      Apply(policy_.OnRequestQueued(functions_[function].name));
      Dispatch(function);
    }
    Apply(policy_.Tick());
    for (size_t i = 0; i < functions_.size(); ++i) Dispatch(static_cast<int>(i));
  }
  clock_.Advance(end - clock_.Now());
  ledger_.Settle(end);
  *rejected = rejected_;
  return absl::OkStatus();
}

// Returns local midnight of the day holding `t`, plus `days`.
absl::Time Midnight(absl::Time t, absl::TimeZone zone, int days) {
  return absl::FromCivil(absl::CivilDay(absl::ToCivilDay(t, zone)) + days, zone);
}

}  // namespace

SimulationPeriod TracePeriod(const Trace& trace, absl::TimeZone zone) {
  return {Midnight(trace.requests.front().at, zone, 0), Midnight(trace.requests.back().at, zone, 1)};
}

absl::StatusOr<SimulationResult> Simulate(const LifecycleConfig& config, const Trace& trace) {
  if (trace.requests.empty()) return absl::InvalidArgumentError("the trace holds no requests");
  return Simulate(config, trace, TracePeriod(trace, config.default_schedule.timezone));
}

absl::StatusOr<SimulationResult> Simulate(const LifecycleConfig& config, const Trace& trace,
                                          const SimulationPeriod& period) {
  if (trace.requests.empty()) return absl::InvalidArgumentError("the trace holds no requests");
  if (trace.requests.front().at < period.start || trace.requests.back().at >= period.end) {
    return absl::InvalidArgumentError("the trace has requests outside the simulated period");
  }
  for (const std::string& name : trace.functions) {
    if (!config.functions.contains(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the trace names function \"", name, "\", which the config lacks"));
    }
  }
  std::vector<SimFunction> functions;
  for (const auto& [name, policy] : config.functions) functions.push_back({name, {}, absl::InfiniteFuture()});
  SimulationResult result;
  result.start = period.start;
  result.end = period.end;
  result.requests = static_cast<int64_t>(trace.requests.size());
  auto replay = std::make_unique<Replay>(config, functions, result.start);
  if (absl::Status status = replay->Run(trace, result.end, &result.rejected); !status.ok()) return status;
  LedgerTotals total;
  for (size_t i = 0; i < functions.size(); ++i) {
    const LedgerTotals totals = replay->Totals(static_cast<int>(i), result.start, result.end);
    result.functions[functions[i].name] = Summarize(totals, config.billing.gpu_hour_price);
    total.Merge(totals);
  }
  result.total = Summarize(total, config.billing.gpu_hour_price);
  return result;
}

nlohmann::json SimulationResultToJson(const SimulationResult& result) {
  nlohmann::json out = {{"total", CostSummaryToJson(result.total)}, {"functions", nlohmann::json::object()}};
  for (const auto& [name, summary] : result.functions) out["functions"][name] = CostSummaryToJson(summary);
  return out;
}

}  // namespace doze::lifecycle

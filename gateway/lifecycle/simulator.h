// Replays a trace through the lifecycle policy on a virtual clock, with a service-time model standing in for
// the workers: a start takes `cold_start`, a wake `wake`, a request prompt/prefill + completion/decode
// seconds, and requests run side by side (continuous batching). The policy, ledger and pricing are the
// gateway's own code.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "gateway/lifecycle/cost_summary.h"
#include "gateway/lifecycle/lifecycle_config.h"
#include "gateway/lifecycle/trace.h"
#include "nlohmann/json.hpp"

namespace doze::lifecycle {

// The period a replay prices, always-on included: local midnight of the first request's day to local midnight
// after the last request's day. Policies compared on one trace are priced over one period.
struct SimulationPeriod {
  absl::Time start;
  absl::Time end;
};

struct SimulationResult {
  CostSummary total;
  std::map<std::string, CostSummary> functions;
  absl::Time start;  // The period priced.
  absl::Time end;
  int64_t requests = 0;
  int64_t rejected = 0;  // Answered 409 (archived, reject mode).
};

// Returns the period of `trace` (which must hold a request) with its days in `zone`.
SimulationPeriod TracePeriod(const Trace& trace, absl::TimeZone zone);

// Replays `trace` under `config` over `period`, which must hold every request; every function of the trace
// must be configured.
absl::StatusOr<SimulationResult> Simulate(const LifecycleConfig& config, const Trace& trace,
                                          const SimulationPeriod& period);

// As above, over TracePeriod(trace) in the time zone of `config`'s default schedule (UTC without one).
absl::StatusOr<SimulationResult> Simulate(const LifecycleConfig& config, const Trace& trace);

// Returns {"total": {...}, "functions": {NAME: {...}}} as `doze simulate` prints it.
nlohmann::json SimulationResultToJson(const SimulationResult& result);

}  // namespace doze::lifecycle

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

struct SimulationResult {
  CostSummary total;
  std::map<std::string, CostSummary> functions;
  absl::Time start;  // Local midnight of the trace's first day (default schedule's zone).
  absl::Time end;    // Local midnight after its last day.
  int64_t requests = 0;
  int64_t rejected = 0;  // Answered 409 (archived, reject mode).
};

// Replays `trace` under `config`; every function of the trace must be configured.
absl::StatusOr<SimulationResult> Simulate(const LifecycleConfig& config, const Trace& trace);

// Returns {"total": {...}, "functions": {NAME: {...}}} as `doze simulate` prints it.
nlohmann::json SimulationResultToJson(const SimulationResult& result);

}  // namespace doze::lifecycle

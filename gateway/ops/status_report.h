// What operators read: the /ops/status JSON and the /metrics Prometheus text, from the function table.
#pragma once

#include <string>

#include "gateway/functions/function_table.h"
#include "gateway/ops/reload_log.h"
#include "gateway/workers/lifecycle_driver.h"

namespace doze::gateway {

// Returns {"functions": {NAME: {"state", "pid", "since", "queue_depth", "in_flight", "requests", "tokens_in",
// "tokens_out", "cold_starts", "last_cold_start_ms", "median_cold_start_ms", "last_error", ..., "lifecycle":
// {...}}}, "reload": {...}}; "state" is the worker process's, "lifecycle" the policy's view with its
// transitions and ledger, "reload" the configuration reloads so far (ReloadLog).
std::string RenderStatusJson(const FunctionTable& functions, LifecycleDriver* lifecycle,
                             const ReloadLog& reloads);

// Returns the Prometheus text exposition (format 0.0.4) of every function's metrics and worker state.
std::string RenderMetrics(const FunctionTable& functions, LifecycleDriver* lifecycle);

}  // namespace doze::gateway

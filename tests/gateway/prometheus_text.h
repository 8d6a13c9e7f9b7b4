// A checker of the Prometheus text exposition format (0.0.4), for the /metrics tests.
#pragma once

#include <string>

namespace doze::gateway::testing {

// Returns "" when `text` is well-formed: HELP/TYPE comments, samples `name{label="value",...} number`, every
// sample of a declared family, histogram buckets cumulative and ending in +Inf; else the first problem found.
std::string CheckPrometheusText(const std::string& text);

}  // namespace doze::gateway::testing

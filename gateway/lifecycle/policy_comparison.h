// `doze simulate --compare`: one trace replayed under several policies derived from one configuration:
// always-on (a daily 00:00-24:00 window, no archiving), purely on demand (no schedule) and the
// configuration's own.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "gateway/lifecycle/simulator.h"
#include "gateway/lifecycle/trace.h"
#include "yaml-cpp/yaml.h"

namespace doze::lifecycle {

// One row of the comparison.
struct ComparedPolicy {
  std::string name;  // "always-on", "on-demand" or "config".
  SimulationResult result;
};

// Returns the YAML of each compared policy, derived from the gateway's YAML `root` (left unchanged).
std::vector<std::pair<std::string, YAML::Node>> ComparedPolicyConfigs(const YAML::Node& root);

// Replays `trace` under every policy of ComparedPolicyConfigs(root); errors name the policy.
absl::StatusOr<std::vector<ComparedPolicy>> ComparePolicies(const YAML::Node& root, const Trace& trace);

}  // namespace doze::lifecycle

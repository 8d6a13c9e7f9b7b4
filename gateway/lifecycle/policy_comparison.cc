#include "gateway/lifecycle/policy_comparison.h"

#include "absl/strings/str_cat.h"
#include "gateway/lifecycle/lifecycle_config.h"

namespace doze::lifecycle {

std::vector<std::pair<std::string, YAML::Node>> ComparedPolicyConfigs(const YAML::Node& root) {
  YAML::Node always_on = YAML::Clone(root);
  YAML::Node on_demand = YAML::Clone(root);
  on_demand.remove("schedule");
  for (YAML::Node variant : {always_on, on_demand}) {
    if (!variant["functions"].IsMap()) continue;
    for (auto entry : variant["functions"]) {
      if (entry.second.IsMap()) entry.second.remove("schedule");
    }
  }
  YAML::Node windows = YAML::Load("[{days: daily, from: '00:00', to: '24:00'}]");
  always_on["schedule"]["resident"] = windows;
  always_on["schedule"].remove("archive");
  return {{"always-on", always_on}, {"on-demand", on_demand}, {"config", YAML::Clone(root)}};
}

absl::StatusOr<std::vector<ComparedPolicy>> ComparePolicies(const YAML::Node& root, const Trace& trace) {
  if (trace.requests.empty()) return absl::InvalidArgumentError("the trace holds no requests");
  // One period for every row, with its days in the configuration's own time zone: a derived policy may lack
  // the `schedule:` that names it, and always-on must cost the same in every row.
  absl::StatusOr<LifecycleConfig> own = ParseLifecycleConfig(root);
  if (!own.ok()) return absl::InvalidArgumentError(absl::StrCat("config: ", own.status().message()));
  const SimulationPeriod period = TracePeriod(trace, own->default_schedule.timezone);
  std::vector<ComparedPolicy> rows;
  for (const auto& [name, node] : ComparedPolicyConfigs(root)) {
    absl::StatusOr<LifecycleConfig> config = ParseLifecycleConfig(node);
    if (!config.ok()) return absl::InvalidArgumentError(absl::StrCat(name, ": ", config.status().message()));
    absl::StatusOr<SimulationResult> result = Simulate(*config, trace, period);
    if (!result.ok()) return absl::InvalidArgumentError(absl::StrCat(name, ": ", result.status().message()));
    rows.push_back({name, *std::move(result)});
  }
  return rows;
}

}  // namespace doze::lifecycle

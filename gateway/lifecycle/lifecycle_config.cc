#include "gateway/lifecycle/lifecycle_config.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "gateway/config/yaml_map.h"
#include "gateway/lifecycle/resident_window.h"
#include "worker/common/duration.h"
#include "worker/common/file_util.h"
#include "worker/common/status_macros.h"

namespace doze::lifecycle {
namespace {

using gateway::YamlMap;

// Reads `key` as a duration with a day unit ("7d"), leaving `out` alone when absent.
absl::Status ReadDuration(YamlMap& map, const std::string& key, bool allow_zero, absl::Duration* out) {
  ASSIGN_OR_RETURN(std::optional<std::string> text, map.String(key));
  if (!text) return absl::OkStatus();
  absl::StatusOr<absl::Duration> value = ParseConfigDuration(*text);
  if (!value.ok()) return map.Error(key, std::string(value.status().message()));
  if (!allow_zero && *value <= absl::ZeroDuration()) return map.Error(key, "must be positive");
  *out = *value;
  return absl::OkStatus();
}

absl::Status ParseBilling(const YAML::Node& node, BillingConfig* billing) {
  ASSIGN_OR_RETURN(YamlMap map, YamlMap::Create(node, "billing"));
  ASSIGN_OR_RETURN(std::optional<double> price, map.Double("gpu_hour_price", 0.0, 1e6));
  ASSIGN_OR_RETURN(std::optional<std::string> currency, map.String("currency"));
  if (price) billing->gpu_hour_price = *price;
  if (currency) billing->currency = *currency;
  return map.CheckNoUnknownKeys();
}

absl::Status ParseTimezone(YamlMap& map, SchedulePolicy* policy) {
  ASSIGN_OR_RETURN(std::optional<std::string> name, map.String("timezone"));
  if (!name) return absl::OkStatus();
  absl::TimeZone zone;
  if (!absl::LoadTimeZone(*name, &zone)) {
    return map.Error("timezone", absl::StrCat("unknown time zone \"", *name, "\" (is tzdata installed?)"));
  }
  policy->timezone_name = *name;
  policy->timezone = zone;
  return absl::OkStatus();
}

absl::Status ParseResident(YamlMap& map, SchedulePolicy* policy) {
  YAML::Node list = map.Raw("resident");
  if (!list) return absl::OkStatus();
  policy->resident.clear();
  if (list.IsNull()) return absl::OkStatus();
  if (!list.IsSequence()) return map.Error("resident", "must be a list of windows");
  for (size_t i = 0; i < list.size(); ++i) {
    ASSIGN_OR_RETURN(ResidentWindow window,
                     ParseResidentWindow(list[i], absl::StrCat(map.PathOf("resident"), "[", i, "]")));
    policy->resident.push_back(window);
  }
  return absl::OkStatus();
}

absl::Status ParseIdleAction(YamlMap& map, SchedulePolicy* policy) {
  ASSIGN_OR_RETURN(std::optional<std::string> action, map.String("idle_action"));
  if (!action) return absl::OkStatus();
  if (*action == "stop") {
    policy->idle_action = IdleAction::kStop;
  } else if (*action == "sleep") {
    policy->idle_action = IdleAction::kSleep;
  } else {
    return map.Error("idle_action", absl::StrCat("expected stop or sleep, got \"", *action, "\""));
  }
  return absl::OkStatus();
}

// Applies `schedule.archive`; its presence turns archiving on, and each key overrides what `rule` holds.
absl::Status ParseArchive(const YAML::Node& node, const std::string& path, ArchiveRule* rule) {
  if (!node) return absl::OkStatus();
  ASSIGN_OR_RETURN(YamlMap map, YamlMap::Create(node, path));
  rule->enabled = true;
  ASSIGN_OR_RETURN(std::optional<double> below, map.Double("below_utilization", 0.0, 1.0));
  if (below) rule->below_utilization = *below;
  RETURN_IF_ERROR(ReadDuration(map, "window", /*allow_zero=*/false, &rule->window));
  ASSIGN_OR_RETURN(std::optional<std::string> on_request, map.String("on_request"));
  if (on_request) {
    if (*on_request == "restore") {
      rule->on_request = ArchivedRequestAction::kRestore;
    } else if (*on_request == "reject") {
      rule->on_request = ArchivedRequestAction::kReject;
    } else {
      return map.Error("on_request", absl::StrCat("expected restore or reject, got \"", *on_request, "\""));
    }
  }
  ASSIGN_OR_RETURN(std::optional<bool> enabled, map.Bool("enabled"));
  if (enabled) rule->enabled = *enabled;
  return map.CheckNoUnknownKeys();
}

// Applies the keys present in a `schedule:` mapping over `policy`, so a function inherits what it leaves out.
absl::Status ApplySchedule(const YAML::Node& node, const std::string& path, SchedulePolicy* policy) {
  if (!node || node.IsNull()) return absl::OkStatus();
  ASSIGN_OR_RETURN(YamlMap map, YamlMap::Create(node, path));
  RETURN_IF_ERROR(ParseTimezone(map, policy));
  RETURN_IF_ERROR(ParseResident(map, policy));
  RETURN_IF_ERROR(ReadDuration(map, "prewarm", /*allow_zero=*/true, &policy->prewarm));
  // Windows repeat each week; a longer lead means nothing more, and the policy steps through the windows
  // it skips one at a time (a prewarm of 10^9 hours held its lock for minutes).
  if (policy->prewarm > absl::Hours(24 * 7)) return map.Error("prewarm", "must be at most 7d");
  RETURN_IF_ERROR(ReadDuration(map, "idle_timeout", /*allow_zero=*/false, &policy->idle_timeout));
  RETURN_IF_ERROR(ParseIdleAction(map, policy));
  RETURN_IF_ERROR(ReadDuration(map, "min_ready", /*allow_zero=*/true, &policy->min_ready));
  RETURN_IF_ERROR(ParseArchive(map.Raw("archive"), map.PathOf("archive"), &policy->archive));
  return map.CheckNoUnknownKeys();
}

absl::Status ParseSimulation(const YAML::Node& node, SimulationModel* model) {
  ASSIGN_OR_RETURN(YamlMap map, YamlMap::Create(node, "simulation"));
  RETURN_IF_ERROR(ReadDuration(map, "cold_start", /*allow_zero=*/true, &model->cold_start));
  RETURN_IF_ERROR(ReadDuration(map, "wake", /*allow_zero=*/true, &model->wake));
  ASSIGN_OR_RETURN(std::optional<double> prefill, map.Double("prefill_tokens_per_s", 1.0, 1e9));
  ASSIGN_OR_RETURN(std::optional<double> decode, map.Double("decode_tokens_per_s", 1.0, 1e9));
  if (prefill) model->prefill_tokens_per_s = *prefill;
  if (decode) model->decode_tokens_per_s = *decode;
  return map.CheckNoUnknownKeys();
}

}  // namespace

absl::StatusOr<LifecycleConfig> ParseLifecycleConfig(const YAML::Node& root,
                                                     const std::vector<FunctionNode>& functions) {
  if (root && !root.IsNull() && !root.IsMap()) return absl::InvalidArgumentError("config: must be a mapping");
  LifecycleConfig config;
  RETURN_IF_ERROR(ParseBilling(root["billing"], &config.billing));
  RETURN_IF_ERROR(ApplySchedule(root["schedule"], "schedule", &config.default_schedule));
  RETURN_IF_ERROR(ParseSimulation(root["simulation"], &config.simulation));
  YAML::Node state_file = root["state_file"];
  if (state_file && !state_file.IsNull()) {
    if (!state_file.IsScalar()) return absl::InvalidArgumentError("state_file: must be a path");
    config.state_file = state_file.Scalar();
  }
  for (const FunctionNode& function : functions) {
    SchedulePolicy policy = config.default_schedule;
    const std::string path = absl::StrCat("functions.", function.name);
    if (function.node && !function.node.IsNull() && !function.node.IsMap()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": must be a mapping"));
    }
    const YAML::Node schedule =
        function.node && function.node.IsMap() ? function.node["schedule"] : YAML::Node();
    RETURN_IF_ERROR(ApplySchedule(schedule, absl::StrCat(path, ".schedule"), &policy));
    config.functions[function.name] = std::move(policy);
  }
  if (config.functions.empty())
    return absl::InvalidArgumentError("functions: at least one function is required");
  return config;
}

absl::StatusOr<LifecycleConfig> ParseLifecycleConfig(const YAML::Node& root) {
  std::vector<FunctionNode> functions;
  const YAML::Node node = root && root.IsMap() ? root["functions"] : YAML::Node();
  if (node && !node.IsNull()) {
    if (!node.IsMap()) return absl::InvalidArgumentError("functions: must be a mapping of name to function");
    ASSIGN_OR_RETURN(YamlMap names, YamlMap::Create(node, "functions"));  // every key a plain name
    for (const std::string& name : names.Keys()) functions.push_back({name, names.Raw(name)});
  }
  return ParseLifecycleConfig(root, functions);
}

absl::StatusOr<LifecycleConfig> LoadLifecycleConfigFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": line ", e.mark.line + 1, ": ", e.msg));
  }
  absl::StatusOr<LifecycleConfig> config = ParseLifecycleConfig(root);
  if (!config.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", config.status().message()));
  return config;
}

}  // namespace doze::lifecycle

// Parsing of one resident window (`{ days: mon-fri, from: "09:00", to: "18:00" }`).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "gateway/lifecycle/lifecycle_config.h"
#include "yaml-cpp/yaml.h"

namespace doze::lifecycle {

// Parses a window mapping found at `path` (e.g. "schedule.resident[0]"). `days` is a comma-separated list of
// days and ranges ("mon-fri", "sat,sun", "fri-mon", "daily"); `from`/`to` are "HH:MM", and `to` may be
// "24:00".
absl::StatusOr<ResidentWindow> ParseResidentWindow(const YAML::Node& node, const std::string& path);

}  // namespace doze::lifecycle

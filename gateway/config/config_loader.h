// Loads and validates the gateway's YAML configuration.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "gateway/config/config.h"

namespace doze::gateway {

// Parses YAML text into a Config; InvalidArgument naming the key path on the first bad or unknown key.
absl::StatusOr<Config> ParseConfig(const std::string& yaml_text);

// Reads and parses a configuration file; errors name the file.
absl::StatusOr<Config> LoadConfigFile(const std::string& path);

}  // namespace doze::gateway

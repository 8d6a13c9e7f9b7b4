// Typed, path-aware reads of one YAML mapping: every error names the key path, and keys nobody asked for are
// reported as unknown.
#pragma once

#include <optional>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "yaml-cpp/yaml.h"

namespace doze::gateway {

// A view of a YAML mapping at `path` (e.g. "functions.copy_polish").
class YamlMap {
 public:
  // `node` may be null (absent section: every key reads as absent); anything else must be a mapping.
  static absl::StatusOr<YamlMap> Create(const YAML::Node& node, std::string path);

  // Returns the full path of `key` inside this mapping.
  std::string PathOf(const std::string& key) const;

  // Returns the raw node of `key` (null when absent) and marks the key known.
  YAML::Node Raw(const std::string& key);

  // Returns the keys of the mapping in file order.
  std::vector<std::string> Keys() const;

  // Reads a string; nullopt when absent.
  absl::StatusOr<std::optional<std::string>> String(const std::string& key);

  // Reads a boolean (true/false, and YAML 1.1's yes/no, on/off, in any case); nullopt when absent.
  absl::StatusOr<std::optional<bool>> Bool(const std::string& key);

  // Reads an integer in [min, max]; nullopt when absent.
  absl::StatusOr<std::optional<int64_t>> Int(const std::string& key, int64_t min, int64_t max);

  // Reads a number in [min, max]; nullopt when absent.
  absl::StatusOr<std::optional<double>> Double(const std::string& key, double min, double max);

  // Reads a positive duration such as "60s", "5m" or "250ms" (or zero, "0s", with `allow_zero`); nullopt
  // when absent.
  absl::StatusOr<std::optional<absl::Duration>> Duration(const std::string& key, bool allow_zero = false);

  // Returns InvalidArgument naming the first key that no read asked for, or that appears twice.
  absl::Status CheckNoUnknownKeys() const;

  // Returns an InvalidArgument error "PATH.KEY: message".
  absl::Status Error(const std::string& key, const std::string& message) const;

 private:
  YamlMap(YAML::Node node, std::string path) : node_(std::move(node)), path_(std::move(path)) {}

  // Returns the scalar node of `key`, or an error when it is present but not a scalar.
  absl::StatusOr<YAML::Node> Scalar(const std::string& key);

  YAML::Node node_;
  std::string path_;
  std::set<std::string> known_;
};

}  // namespace doze::gateway

#include "gateway/config/yaml_map.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "worker/common/status_macros.h"

namespace doze::gateway {
namespace {

// What a key that is not a plain name is, or "" for a plain name. A mapping or a list as a key is most often
// a template left unrendered ("{{ name }}:"); "~" is null; an unquoted "<<" is YAML 1.1's merge key, which
// yaml-cpp reads as a key like any other.
std::string KeyProblem(const YAML::Node& key) {
  if (key.IsNull()) return "null (~)";
  if (key.IsMap()) return "a mapping (a template left unrendered?)";
  if (key.IsSequence()) return "a list";
  if (key.Scalar() == "<<" && key.Tag() == "?")
    return "a merge key (<<), which is not supported: write the keys out";
  return "";
}

}  // namespace

absl::StatusOr<YamlMap> YamlMap::Create(const YAML::Node& node, std::string path) {
  const std::string where = path.empty() ? "config" : path;
  if (node && !node.IsNull() && !node.IsMap())
    return absl::InvalidArgumentError(absl::StrCat(where, ": must be a mapping"));
  if (node && node.IsMap()) {
    for (const auto& entry : node) {
      if (const std::string problem = KeyProblem(entry.first); !problem.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": line ", entry.first.Mark().line + 1,
                                                       ": a key must be a plain name, not ", problem));
      }
    }
  }
  return YamlMap(node, std::move(path));
}

std::string YamlMap::PathOf(const std::string& key) const {
  return path_.empty() ? key : absl::StrCat(path_, ".", key);
}

absl::Status YamlMap::Error(const std::string& key, const std::string& message) const {
  return absl::InvalidArgumentError(absl::StrCat(PathOf(key), ": ", message));
}

YAML::Node YamlMap::Raw(const std::string& key) {
  known_.insert(key);
  if (!node_ || !node_.IsMap()) return YAML::Node();
  return node_[key];
}

std::vector<std::string> YamlMap::Keys() const {
  std::vector<std::string> keys;
  if (!node_ || !node_.IsMap()) return keys;
  for (const auto& entry : node_) keys.push_back(entry.first.as<std::string>());
  return keys;
}

absl::StatusOr<YAML::Node> YamlMap::Scalar(const std::string& key) {
  YAML::Node value = Raw(key);
  if (value && !value.IsNull() && !value.IsScalar()) return Error(key, "must be a scalar");
  return value;
}

absl::StatusOr<std::optional<bool>> YamlMap::Bool(const std::string& key) {
  ASSIGN_OR_RETURN(YAML::Node value, Scalar(key));
  if (!value || value.IsNull()) return std::nullopt;
  bool out = false;
  if (!YAML::convert<bool>::decode(value, out))
    return Error(key, absl::StrCat("expected true or false, got \"", value.Scalar(), "\""));
  return out;
}

absl::StatusOr<std::optional<std::string>> YamlMap::String(const std::string& key) {
  absl::StatusOr<YAML::Node> value = Scalar(key);
  if (!value.ok()) return value.status();
  if (!*value || value->IsNull()) return std::nullopt;
  return value->Scalar();
}

absl::StatusOr<std::optional<int64_t>> YamlMap::Int(const std::string& key, int64_t min, int64_t max) {
  absl::StatusOr<std::optional<std::string>> text = String(key);
  if (!text.ok()) return text.status();
  if (!text->has_value()) return std::nullopt;
  int64_t value = 0;
  if (!absl::SimpleAtoi(**text, &value))
    return Error(key, absl::StrCat("must be an integer, got \"", **text, "\""));
  if (value < min || value > max) return Error(key, absl::StrCat("must be between ", min, " and ", max));
  return value;
}

absl::StatusOr<std::optional<double>> YamlMap::Double(const std::string& key, double min, double max) {
  absl::StatusOr<std::optional<std::string>> text = String(key);
  if (!text.ok()) return text.status();
  if (!text->has_value()) return std::nullopt;
  double value = 0;
  if (!absl::SimpleAtod(**text, &value) || !std::isfinite(value)) {
    return Error(key, absl::StrCat("must be a number, got \"", **text, "\""));
  }
  if (value < min || value > max) return Error(key, absl::StrCat("must be between ", min, " and ", max));
  return value;
}

absl::StatusOr<std::optional<absl::Duration>> YamlMap::Duration(const std::string& key, bool allow_zero) {
  absl::StatusOr<std::optional<std::string>> text = String(key);
  if (!text.ok()) return text.status();
  if (!text->has_value()) return std::nullopt;
  absl::Duration value;
  const bool parsed = absl::ParseDuration(**text, &value);
  const bool too_small = allow_zero ? value < absl::ZeroDuration() : value <= absl::ZeroDuration();
  if (!parsed || too_small || value == absl::InfiniteDuration()) {
    return Error(key, absl::StrCat("must be a ", allow_zero ? "non-negative" : "positive",
                                   " duration such as 30s, 5m or 250ms, got \"", **text, "\""));
  }
  return value;
}

absl::Status YamlMap::CheckNoUnknownKeys() const {
  std::set<std::string> seen;
  for (const std::string& key : Keys()) {
    if (!known_.contains(key)) return Error(key, "unknown key");
    // YAML leaves a repeated key to the reader; the first would win, the second be ignored unseen.
    if (!seen.insert(key).second) return Error(key, "appears more than once");
  }
  return absl::OkStatus();
}

}  // namespace doze::gateway

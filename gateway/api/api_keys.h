// Bearer-token checks: the API keys of /v1 (from server.api_keys_file) and the admin token of /ops mutations.
// Keys are compared in constant time.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace doze::gateway {

class ApiKeys {
 public:
  // No keys: every request is allowed.
  ApiKeys() = default;
  explicit ApiKeys(std::vector<std::string> keys) : keys_(std::move(keys)) {}

  // Reads one key per line (ReadApiKeyFile).
  static absl::StatusOr<ApiKeys> FromFile(const std::string& path);

  // OK when no keys are configured or `authorization` is "Bearer <one of the keys>"; else Unauthenticated.
  absl::Status Check(const std::string& authorization) const;

  // Returns whether keys are required.
  bool enabled() const { return !keys_.empty(); }

 private:
  std::vector<std::string> keys_;
};

// The keys in force: read by every request's check while a configuration reload may replace them.
class ApiKeySet {
 public:
  explicit ApiKeySet(ApiKeys keys);

  // Puts `keys` in force for the checks that start from now on.
  void Replace(ApiKeys keys);

  // ApiKeys::Check of the keys in force.
  absl::Status Check(const std::string& authorization) const;

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const ApiKeys> keys_ ABSL_GUARDED_BY(mu_);
};

// Returns whether `a` equals `b`, taking time that depends only on their lengths.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

// The credentials of an "Authorization: Bearer <token>" header (the scheme in any case, RFC 9110), or
// nullopt for another or no scheme.
std::optional<std::string> BearerToken(const std::string& authorization);

}  // namespace doze::gateway

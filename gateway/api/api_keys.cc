#include "gateway/api/api_keys.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "gateway/config/api_key_file.h"
#include "gateway/openai/api_error.h"
#include "worker/common/status_macros.h"

namespace doze::gateway {

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  size_t length = std::max(a.size(), b.size());
  unsigned char difference = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < length; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    difference |= x ^ y;
  }
  return difference == 0;
}

absl::StatusOr<ApiKeys> ApiKeys::FromFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::vector<std::string> keys, ReadApiKeyFile(path));
  return ApiKeys(std::move(keys));
}

ApiKeySet::ApiKeySet(ApiKeys keys) : keys_(std::make_shared<const ApiKeys>(std::move(keys))) {}

void ApiKeySet::Replace(ApiKeys keys) {
  auto fresh = std::make_shared<const ApiKeys>(std::move(keys));
  absl::MutexLock lock(&mu_);
  keys_ = std::move(fresh);
}

absl::Status ApiKeySet::Check(const std::string& authorization) const {
  std::shared_ptr<const ApiKeys> current;
  {
    absl::MutexLock lock(&mu_);
    current = keys_;
  }
  return current->Check(authorization);
}

std::optional<std::string> BearerToken(const std::string& authorization) {
  constexpr absl::string_view kScheme = "bearer";
  absl::string_view header = authorization;
  if (header.size() <= kScheme.size() || !absl::StartsWithIgnoreCase(header, kScheme) ||
      header[kScheme.size()] != ' ') {
    return std::nullopt;
  }
  return std::string(absl::StripLeadingAsciiWhitespace(header.substr(kScheme.size())));
}

absl::Status ApiKeys::Check(const std::string& authorization) const {
  if (keys_.empty()) return absl::OkStatus();
  std::optional<std::string> presented = BearerToken(authorization);
  if (!presented.has_value()) {
    return WithCode(absl::UnauthenticatedError("missing API key: send \"Authorization: Bearer <key>\""),
                    "invalid_api_key");
  }
  bool found = false;
  for (const std::string& key : keys_) found |= ConstantTimeEquals(*presented, key);
  if (!found) return WithCode(absl::UnauthenticatedError("incorrect API key"), "invalid_api_key");
  return absl::OkStatus();
}

}  // namespace doze::gateway

#include "gateway/config/api_key_file.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "worker/common/file_util.h"
#include "worker/common/status_macros.h"

namespace doze::gateway {

absl::StatusOr<std::vector<std::string>> ReadApiKeyFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  std::vector<std::string> keys;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    keys.emplace_back(line);
  }
  if (keys.empty()) return absl::InvalidArgumentError(path + ": holds no API key");
  return keys;
}

}  // namespace doze::gateway

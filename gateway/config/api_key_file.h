// The file server.api_keys_file names: one key per line.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace doze::gateway {

// The keys of `path`, one a line, each stripped of surrounding whitespace (CRLF endings too); blank lines and
// lines starting with '#' are skipped. InvalidArgument naming the path when it cannot be read or holds no
// key.
absl::StatusOr<std::vector<std::string>> ReadApiKeyFile(const std::string& path);

}  // namespace doze::gateway

// Whole-file reads and writes with errors that name the path.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace doze {

// Reads the whole file; NotFound when it does not exist, InvalidArgument when it is not a regular file.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Writes (replacing) the whole file.
absl::Status WriteStringToFile(const std::string& path, std::string_view contents);

}  // namespace doze

// Durations as written in configuration files: Abseil's syntax ("90s", "5m", "1h30m", "250ms") plus a day
// unit
// ("7d"), which absl::ParseDuration lacks and archive windows need.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace doze {

// Parses a non-negative duration such as "0s", "90s", "5m", "2h", "7d" or "1d12h"; InvalidArgument otherwise.
absl::StatusOr<absl::Duration> ParseConfigDuration(std::string_view text);

// Formats a duration the way ParseConfigDuration reads it, using days for whole multiples of 24 h ("7d").
std::string FormatConfigDuration(absl::Duration duration);

}  // namespace doze

#include "worker/common/duration.h"

#include <cctype>
#include <string>

#include "absl/strings/str_cat.h"

namespace doze {
namespace {

absl::Status BadDuration(std::string_view text) {
  return absl::InvalidArgumentError(
      absl::StrCat("expected a duration such as 90s, 5m, 2h or 7d, got \"", std::string(text), "\""));
}

}  // namespace

absl::StatusOr<absl::Duration> ParseConfigDuration(std::string_view text) {
  if (text == "0") return absl::ZeroDuration();
  if (text.empty() || text.front() == '-' || text.front() == '+') return BadDuration(text);
  absl::Duration total = absl::ZeroDuration();
  size_t pos = 0;
  while (pos < text.size()) {
    // One "<number><unit>" term: absl parses every unit but "d", which is handled here as 24 h.
    size_t unit_begin = pos;
    while (unit_begin < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[unit_begin])) || text[unit_begin] == '.')) {
      ++unit_begin;
    }
    size_t unit_end = unit_begin;
    while (unit_end < text.size() && std::isalpha(static_cast<unsigned char>(text[unit_end]))) ++unit_end;
    if (unit_begin == pos || unit_end == unit_begin) return BadDuration(text);
    std::string number(text.substr(pos, unit_begin - pos));
    std::string unit(text.substr(unit_begin, unit_end - unit_begin));
    absl::Duration term;
    if (unit == "d") {
      if (!absl::ParseDuration(number + "h", &term)) return BadDuration(text);
      term *= 24;
    } else if (!absl::ParseDuration(number + unit, &term)) {
      return BadDuration(text);
    }
    total += term;
    pos = unit_end;
  }
  return total;
}

std::string FormatConfigDuration(absl::Duration duration) {
  const absl::Duration day = absl::Hours(24);
  if (duration > absl::ZeroDuration() && duration % day == absl::ZeroDuration()) {
    return absl::StrCat(duration / day, "d");
  }
  return absl::FormatDuration(duration);
}

}  // namespace doze

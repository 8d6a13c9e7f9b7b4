#include "gateway/lifecycle/resident_window.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gateway/config/yaml_map.h"
#include "worker/common/status_macros.h"

namespace doze::lifecycle {
namespace {

constexpr const char* kDayNames[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
constexpr int kMinutesPerDay = 24 * 60;

std::optional<int> DayIndex(const std::string& name) {
  for (int day = 0; day < 7; ++day) {
    if (name == kDayNames[day]) return day;
  }
  return std::nullopt;
}

absl::StatusOr<std::array<bool, 7>> ParseDays(const std::string& text, const std::string& path) {
  const absl::Status error = absl::InvalidArgumentError(
      absl::StrCat(path, ": expected days such as mon-fri, sat,sun or daily, got \"", text, "\""));
  std::array<bool, 7> days{};
  std::string lowered = absl::AsciiStrToLower(text);
  if (lowered == "daily") return std::array<bool, 7>{true, true, true, true, true, true, true};
  for (absl::string_view part : absl::StrSplit(lowered, ',')) {
    std::vector<std::string> ends = absl::StrSplit(absl::StripAsciiWhitespace(part), '-');
    if (ends.empty() || ends.size() > 2) return error;
    std::optional<int> first = DayIndex(ends.front());
    std::optional<int> last = DayIndex(ends.back());
    if (!first || !last) return error;
    // A range may wrap around the week ("fri-mon").
    for (int day = *first;; day = (day + 1) % 7) {
      days[day] = true;
      if (day == *last) break;
    }
  }
  return days;
}

// Parses "HH:MM" into minutes after midnight; "24:00" only where `allow_end_of_day`.
absl::StatusOr<int> ParseClockTime(const std::string& text, const std::string& path, bool allow_end_of_day) {
  const absl::Status error =
      absl::InvalidArgumentError(absl::StrCat(path, ": expected HH:MM, got \"", text, "\""));
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  int hours = 0;
  int minutes = 0;
  // Digits only: SimpleAtoi alone also takes a sign and surrounding spaces ("+9:00", " 9:00").
  const auto digits = [](const std::string& part) {
    return !part.empty() && std::all_of(part.begin(), part.end(), absl::ascii_isdigit);
  };
  if (parts.size() != 2 || !digits(parts[0]) || parts[0].size() > 2 || parts[1].size() != 2 ||
      !digits(parts[1]) || !absl::SimpleAtoi(parts[0], &hours) || !absl::SimpleAtoi(parts[1], &minutes)) {
    return error;
  }
  if (hours < 0 || minutes < 0 || minutes > 59) return error;
  const int total = hours * 60 + minutes;
  if (total < kMinutesPerDay || (allow_end_of_day && total == kMinutesPerDay)) return total;
  return error;
}

std::string DaysToString(const std::array<bool, 7>& days) {
  std::vector<std::string> runs;
  for (int day = 0; day < 7;) {
    if (!days[day]) {
      ++day;
      continue;
    }
    int last = day;
    while (last + 1 < 7 && days[last + 1]) ++last;
    runs.push_back(last == day ? kDayNames[day] : absl::StrCat(kDayNames[day], "-", kDayNames[last]));
    day = last + 1;
  }
  return absl::StrJoin(runs, ",");
}

}  // namespace

std::string ResidentWindow::ToString() const {
  return absl::StrFormat("%s %02d:%02d-%02d:%02d", DaysToString(days), from_minute / 60, from_minute % 60,
                         to_minute / 60, to_minute % 60);
}

absl::StatusOr<ResidentWindow> ParseResidentWindow(const YAML::Node& node, const std::string& path) {
  if (!node.IsMap()) return absl::InvalidArgumentError(absl::StrCat(path, ": must be a mapping"));
  ASSIGN_OR_RETURN(gateway::YamlMap map, gateway::YamlMap::Create(node, path));
  ASSIGN_OR_RETURN(std::optional<std::string> days, map.String("days"));
  ASSIGN_OR_RETURN(std::optional<std::string> from, map.String("from"));
  ASSIGN_OR_RETURN(std::optional<std::string> to, map.String("to"));
  RETURN_IF_ERROR(map.CheckNoUnknownKeys());
  if (!from) return map.Error("from", "is required (HH:MM)");
  if (!to) return map.Error("to", "is required (HH:MM)");
  ResidentWindow window;
  if (days) {
    ASSIGN_OR_RETURN(window.days, ParseDays(*days, map.PathOf("days")));
  } else {
    window.days.fill(true);
  }
  ASSIGN_OR_RETURN(window.from_minute, ParseClockTime(*from, map.PathOf("from"), /*allow_end_of_day=*/false));
  ASSIGN_OR_RETURN(window.to_minute, ParseClockTime(*to, map.PathOf("to"), /*allow_end_of_day=*/true));
  if (window.from_minute == window.to_minute)
    return map.Error("to", "must differ from `from` (an empty window)");
  return window;
}

}  // namespace doze::lifecycle

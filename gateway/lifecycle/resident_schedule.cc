#include "gateway/lifecycle/resident_schedule.h"

#include <algorithm>

#include "absl/time/civil_time.h"

namespace doze::lifecycle {
namespace {

// absl::Weekday counts from Monday = 0, as ResidentWindow::days does.
int DayIndex(absl::CivilDay day) { return static_cast<int>(absl::GetWeekday(day)); }

}  // namespace

ResidentSchedule::ResidentSchedule(absl::TimeZone timezone, std::vector<ResidentWindow> windows)
    : timezone_(timezone), windows_(std::move(windows)) {}

std::vector<WindowOccurrence> ResidentSchedule::OccurrencesAround(absl::Time t) const {
  std::vector<WindowOccurrence> occurrences;
  if (windows_.empty()) return occurrences;
  const absl::CivilDay today = absl::CivilDay(absl::ToCivilSecond(t, timezone_));
  for (absl::CivilDay day = today - 1; day <= today + 8; ++day) {
    for (const ResidentWindow& window : windows_) {
      if (!window.days[DayIndex(day)]) continue;
      const absl::CivilSecond midnight(day);
      const absl::CivilSecond open = midnight + window.from_minute * 60;
      absl::CivilSecond close = midnight + window.to_minute * 60;
      if (window.to_minute <= window.from_minute) close += 24 * 3600;  // Crosses midnight.
      occurrences.push_back({absl::FromCivil(open, timezone_), absl::FromCivil(close, timezone_), &window});
    }
  }
  return occurrences;
}

const ResidentWindow* ResidentSchedule::WindowAt(absl::Time t) const {
  for (const WindowOccurrence& occurrence : OccurrencesAround(t)) {
    if (occurrence.open <= t && t < occurrence.close) return occurrence.window;
  }
  return nullptr;
}

absl::Time ResidentSchedule::NextOpening(absl::Time t) const {
  absl::Time next = absl::InfiniteFuture();
  for (const WindowOccurrence& occurrence : OccurrencesAround(t)) {
    if (occurrence.open > t) next = std::min(next, occurrence.open);
  }
  return next;
}

absl::Time ResidentSchedule::NextBoundary(absl::Time t) const {
  absl::Time next = absl::InfiniteFuture();
  for (const WindowOccurrence& occurrence : OccurrencesAround(t)) {
    if (occurrence.open > t) next = std::min(next, occurrence.open);
    if (occurrence.close > t) next = std::min(next, occurrence.close);
  }
  return next;
}

}  // namespace doze::lifecycle

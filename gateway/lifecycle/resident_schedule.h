// When a function's workers should be up by the clock: its resident windows, placed on the calendar of its
// time zone. Daylight-saving changes are Abseil's: a window is anchored to local wall-clock times, so an
// 09:00-18:00 window lasts 9 h on every day, including the days on which the clocks move.
#pragma once

#include <vector>

#include "absl/time/time.h"
#include "gateway/lifecycle/lifecycle_config.h"

namespace doze::lifecycle {

// One placed window: [open, close) in absolute time.
struct WindowOccurrence {
  absl::Time open;
  absl::Time close;
  const ResidentWindow* window;
};

class ResidentSchedule {
 public:
  // Places `windows` (copied) in `timezone`.
  ResidentSchedule(absl::TimeZone timezone, std::vector<ResidentWindow> windows);

  // Returns the window that holds `t`, or nullptr outside every window.
  const ResidentWindow* WindowAt(absl::Time t) const;

  // Returns the first window opening strictly after `t`; InfiniteFuture when there are no windows.
  absl::Time NextOpening(absl::Time t) const;

  // Returns the first opening or closing strictly after `t`; InfiniteFuture when there are no windows.
  absl::Time NextBoundary(absl::Time t) const;

  // True when there is at least one window.
  bool empty() const { return windows_.empty(); }

 private:
  // Returns the occurrences of every window opening from the day before `t` to a week after it, so any window
  // that holds `t` (even one crossing midnight) and the next opening are among them.
  std::vector<WindowOccurrence> OccurrencesAround(absl::Time t) const;

  absl::TimeZone timezone_;
  std::vector<ResidentWindow> windows_;
};

}  // namespace doze::lifecycle

// StepWatchdog with real (short) timeouts: it reports a step that runs past the timeout once, and never a run
// of steps that are each shorter, nor anything when not armed.
#include "worker/service/step_watchdog.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "gtest/gtest.h"

namespace doze::service {
namespace {

using std::chrono::milliseconds;

struct Stalls {
  std::atomic<int> count{0};
  std::atomic<int64_t> last_us{0};
  StepWatchdog::Callback Record() {
    return [this](absl::Duration running) {
      last_us.store(absl::ToInt64Microseconds(running));
      count.fetch_add(1);
    };
  }
};

TEST(StepWatchdogTest, StepPastTheTimeoutIsReportedOnce) {
  Stalls stalls;
  StepWatchdog watchdog(stalls.Record());
  watchdog.Arm(absl::Milliseconds(80));
  watchdog.TurnStarted();
  for (int i = 0; i < 200 && stalls.count.load() == 0; ++i) std::this_thread::sleep_for(milliseconds(10));
  ASSERT_EQ(stalls.count.load(), 1);
  EXPECT_GT(stalls.last_us.load(), 80'000);
  EXPECT_LT(stalls.last_us.load(), 1'500'000);
  std::this_thread::sleep_for(milliseconds(200));  // still the same step: no second report
  EXPECT_EQ(stalls.count.load(), 1);
}

TEST(StepWatchdogTest, ManyShortStepsAreNotAStall) {
  Stalls stalls;
  StepWatchdog watchdog(stalls.Record());
  watchdog.Arm(absl::Milliseconds(500));
  for (int i = 0; i < 40; ++i) {  // 0.8 s of steps of 20 ms, with gaps between them
    watchdog.TurnStarted();
    std::this_thread::sleep_for(milliseconds(20));
    watchdog.TurnEnded();
    std::this_thread::sleep_for(milliseconds(1));
  }
  std::this_thread::sleep_for(milliseconds(600));  // idle, longer than the timeout
  EXPECT_EQ(stalls.count.load(), 0);
}

TEST(StepWatchdogTest, UnarmedOrZeroTimeoutNeverReports) {
  Stalls stalls;
  StepWatchdog unarmed(stalls.Record());
  StepWatchdog zero(stalls.Record());
  zero.Arm(absl::ZeroDuration());
  unarmed.TurnStarted();
  zero.TurnStarted();
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_EQ(stalls.count.load(), 0);
}

}  // namespace
}  // namespace doze::service

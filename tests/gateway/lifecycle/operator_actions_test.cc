// An operator's start, stop, sleep and wake through the lifecycle policy, as tables of events on a fake
// clock (LifecyclePolicy::Operate; docs/lifecycle.md, "Operators").
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "gateway/lifecycle/lifecycle_policy.h"
#include "tests/gateway/lifecycle/policy_test_util.h"

namespace doze::lifecycle {
namespace {

using testing::ConfigFromYaml;
using testing::Event;
using testing::kOffice;
using testing::RunSteps;
using testing::StepTime;
using A = Action;
using S = FunctionState;

// The GPU seconds of "fn" over 2025-03-03 and 04, Shanghai time.
LedgerTotals TwoDays(const Ledger& ledger) {
  const absl::Time day = StepTime("2025-03-03 00:00:00", absl::FixedTimeZone(8 * 3600));
  return ledger.Totals("fn", day, day + absl::Hours(48));
}

TEST(OperatorActionsTest, StopInsideAWindowHoldsTheWorkerDownUntilTheNextOpening) {
  Ledger ledger;
  RunSteps(ConfigFromYaml(kOffice),
           {
               {"2025-03-03 10:00:00", Event::kTick, {A::kStart}, S::kStarting},
               {"2025-03-03 10:00:01", Event::kReady, {}, S::kReady},
               {"2025-03-03 10:30:01", Event::kOpStop, {A::kStop}, S::kDraining},
               {"2025-03-03 10:30:02", Event::kStopped, {}, S::kStopped},
               // The window is still open, but the resident rule leaves the stopped worker alone.
               {"2025-03-03 10:30:03", Event::kTick, {}, S::kStopped},
               {"2025-03-03 17:59:59", Event::kTick, {}, S::kStopped},
               {"2025-03-03 18:00:00", Event::kTick, {}, S::kStopped},
               // The next window's pre-warm starts it again.
               {"2025-03-04 08:57:59", Event::kTick, {}, S::kStopped},
               {"2025-03-04 08:58:00", Event::kTick, {A::kStart}, S::kStarting},
               {"2025-03-04 08:58:01", Event::kReady, {}, S::kReady},
           },
           &ledger);
  const LedgerTotals totals = TwoDays(ledger);
  EXPECT_DOUBLE_EQ(totals.warming_s, 2);         // 10:00:00-01 and 08:58:00-01
  EXPECT_DOUBLE_EQ(totals.idle_s, 30 * 60 + 1);  // ready 10:00:01 to stopped 10:30:02
  EXPECT_DOUBLE_EQ(totals.busy_s, 0);
  EXPECT_EQ(totals.cold_starts, 0);
}

TEST(OperatorActionsTest, ARequestLiftsTheStopAndTheWindowKeepsTheWorkerUp) {
  RunSteps(ConfigFromYaml(kOffice), {
                                        {"2025-03-03 10:00:00", Event::kTick, {A::kStart}, S::kStarting},
                                        {"2025-03-03 10:00:01", Event::kReady, {}, S::kReady},
                                        {"2025-03-03 10:30:00", Event::kOpStop, {A::kStop}, S::kDraining},
                                        {"2025-03-03 10:30:01", Event::kStopped, {}, S::kStopped},
                                        {"2025-03-03 11:00:00", Event::kQueue, {A::kStart}, S::kStarting},
                                        {"2025-03-03 11:00:01", Event::kReady, {}, S::kReady},
                                        {"2025-03-03 11:00:01", Event::kStart, {}, S::kReady},
                                        {"2025-03-03 11:00:02", Event::kFinish, {}, S::kReady},
                                        {"2025-03-03 17:59:59", Event::kTick, {}, S::kReady},
                                        {"2025-03-03 18:00:00", Event::kTick, {A::kStop}, S::kDraining},
                                    });
}

TEST(OperatorActionsTest, StartOutsideWindowsIsSubjectToTheIdleTimeout) {
  Ledger ledger;
  RunSteps(ConfigFromYaml(kOffice),
           {
               {"2025-03-03 20:00:00", Event::kTick, {}, S::kStopped},
               {"2025-03-03 20:00:00", Event::kOpStart, {A::kStart}, S::kStarting},
               {"2025-03-03 20:00:01", Event::kReady, {}, S::kReady},
               {"2025-03-03 20:00:02", Event::kOpStart, {}, S::kReady},  // Already up: nothing to do.
               {"2025-03-03 20:05:00", Event::kTick, {}, S::kReady},
               {"2025-03-03 20:05:01", Event::kTick, {A::kStop}, S::kDraining},
               {"2025-03-03 20:05:02", Event::kStopped, {}, S::kStopped},
           },
           &ledger);
  const LedgerTotals totals = TwoDays(ledger);
  EXPECT_DOUBLE_EQ(totals.warming_s, 1);
  EXPECT_DOUBLE_EQ(totals.idle_s, 301);  // 20:00:01 to 20:05:02
  EXPECT_EQ(totals.cold_starts, 0);      // Nobody waited for it.
}

TEST(OperatorActionsTest, SleepInsideAWindowHoldsUntilAWakeAndTheLedgerCountsTheSleepAsOff) {
  Ledger ledger;
  RunSteps(ConfigFromYaml(kOffice),
           {
               {"2025-03-03 10:00:00", Event::kTick, {A::kStart}, S::kStarting},
               {"2025-03-03 10:00:01", Event::kReady, {}, S::kReady},
               {"2025-03-03 10:10:01", Event::kOpSleep, {A::kSleep}, S::kSleeping},
               {"2025-03-03 10:10:02", Event::kTick, {}, S::kSleeping},
               {"2025-03-03 10:40:01", Event::kOpWake, {A::kWake}, S::kWaking},
               {"2025-03-03 10:40:02", Event::kReady, {}, S::kReady},
               {"2025-03-03 10:50:00", Event::kOpStop, {A::kStop}, S::kDraining},
               {"2025-03-03 10:50:00", Event::kStopped, {}, S::kStopped},
           },
           &ledger);
  const LedgerTotals totals = TwoDays(ledger);
  EXPECT_DOUBLE_EQ(totals.warming_s, 2);
  EXPECT_DOUBLE_EQ(totals.idle_s, 600 + 598);  // 10:00:01-10:10:01 and 10:40:02-10:50:00
}

TEST(OperatorActionsTest, StopWhileStartingAndStartWhileDraining) {
  RunSteps(ConfigFromYaml(kOffice), {
                                        {"2025-03-03 20:00:00", Event::kOpStart, {A::kStart}, S::kStarting},
                                        {"2025-03-03 20:00:00", Event::kOpStop, {A::kStop}, S::kDraining},
                                        // The start waits for the stop to finish.
                                        {"2025-03-03 20:00:01", Event::kOpWake, {}, S::kDraining},
                                        {"2025-03-03 20:00:02", Event::kStopped, {A::kStart}, S::kStarting},
                                        {"2025-03-03 20:00:03", Event::kReady, {}, S::kReady},
                                    });
}

TEST(OperatorActionsTest, StopLetsTheRequestInFlightFinish) {
  RunSteps(ConfigFromYaml(kOffice), {
                                        {"2025-03-03 20:00:00", Event::kQueue, {A::kStart}, S::kStarting},
                                        {"2025-03-03 20:00:01", Event::kReady, {}, S::kReady},
                                        {"2025-03-03 20:00:01", Event::kStart, {}, S::kReady},
                                        {"2025-03-03 20:00:02", Event::kOpStop, {}, S::kDraining},
                                        {"2025-03-03 20:00:03", Event::kFinish, {A::kStop}, S::kDraining},
                                        {"2025-03-03 20:00:04", Event::kStopped, {}, S::kStopped},
                                    });
}

TEST(OperatorActionsTest, StopOfAFailedResidentWorkerEndsItsRetries) {
  RunSteps(ConfigFromYaml(kOffice), {
                                        {"2025-03-03 10:00:00", Event::kTick, {A::kStart}, S::kStarting},
                                        {"2025-03-03 10:00:01", Event::kFailed, {}, S::kFailed},
                                        {"2025-03-03 10:00:02", Event::kOpStop, {A::kStop}, S::kStopped},
                                        // Without the stop it would be started again at 10:00:06.
                                        {"2025-03-03 10:00:10", Event::kTick, {}, S::kStopped},
                                        {"2025-03-03 12:00:00", Event::kOpStart, {A::kStart}, S::kStarting},
                                    });
}

TEST(OperatorActionsTest, StopDuringPrewarmHoldsUntilTheFollowingWindow) {
  RunSteps(ConfigFromYaml(kOffice), {
                                        {"2025-03-03 08:58:00", Event::kTick, {A::kStart}, S::kStarting},
                                        {"2025-03-03 08:58:30", Event::kOpStop, {A::kStop}, S::kDraining},
                                        {"2025-03-03 08:58:31", Event::kStopped, {}, S::kStopped},
                                        {"2025-03-03 09:00:00", Event::kTick, {}, S::kStopped},
                                        {"2025-03-04 08:58:00", Event::kTick, {A::kStart}, S::kStarting},
                                    });
}

TEST(OperatorActionsTest, TransitionsNameTheOperatorAndRefusalsSayWhy) {
  gateway::FakeClock clock(StepTime("2025-03-03 20:00:00", absl::FixedTimeZone(8 * 3600)));
  Ledger ledger;
  LifecyclePolicy policy(ConfigFromYaml(kOffice), &clock, &ledger);
  EXPECT_EQ(policy.Operate("nope", OperatorAction::kStart).status().code(), absl::StatusCode::kNotFound);

  absl::StatusOr<std::vector<Decision>> sleep = policy.Operate("fn", OperatorAction::kSleep);
  EXPECT_EQ(sleep.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(sleep.status().message(), "no ready worker")) << sleep.status();

  ASSERT_TRUE(policy.Operate("fn", OperatorAction::kStart).ok());
  policy.OnWorkerEvent("fn", WorkerEvent::kReady, "");
  policy.OnRequestQueued("fn");
  policy.OnRequestStarted("fn", clock.Now());
  sleep = policy.Operate("fn", OperatorAction::kSleep);
  EXPECT_EQ(sleep.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(sleep.status().message(), "1 requests in flight")) << sleep.status();

  clock.Advance(absl::Seconds(5));
  ASSERT_TRUE(policy.Operate("fn", OperatorAction::kStop).ok());
  const std::vector<Transition> transitions = policy.Status()[0].transitions;
  ASSERT_GE(transitions.size(), 4u);
  const Transition& stop = transitions.back();
  EXPECT_EQ(stop.reason, "operator stop");
  EXPECT_EQ(stop.at, clock.Now());
  EXPECT_EQ(stop.from, FunctionState::kReady);
  EXPECT_EQ(stop.to, FunctionState::kDraining);
  EXPECT_EQ(transitions.rbegin()[2].reason, "operator start");

  ASSERT_TRUE(policy.Archive("fn", "by test").ok());
  absl::StatusOr<std::vector<Decision>> start = policy.Operate("fn", OperatorAction::kStart);
  EXPECT_EQ(start.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(start.status().message(), "archived; restore it first")) << start.status();
}

}  // namespace
}  // namespace doze::lifecycle

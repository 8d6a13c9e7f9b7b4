#include "gateway/lifecycle/lifecycle_policy.h"

#include <gtest/gtest.h>

#include "tests/gateway/lifecycle/policy_test_util.h"

namespace doze::lifecycle {
namespace {

using testing::ConfigFromYaml;
using testing::Event;
using testing::kOffice;
using testing::RunSteps;
using A = Action;
using S = FunctionState;

// 2025-03-03 is a Monday.
TEST(LifecyclePolicyTest, WindowOpensWithPrewarmAndClosesOnIdle) {
  RunSteps(ConfigFromYaml(kOffice), {
                                        {"2025-03-03 08:57:00", Event::kTick, {}, S::kStopped},
                                        {"2025-03-03 08:58:00", Event::kTick, {A::kStart}, S::kStarting},
                                        {"2025-03-03 08:58:01", Event::kReady, {}, S::kReady},
                                        {"2025-03-03 12:00:00", Event::kQueue, {}, S::kReady},
                                        {"2025-03-03 12:00:00", Event::kStart, {}, S::kReady},
                                        {"2025-03-03 12:00:01", Event::kFinish, {}, S::kReady},
                                        {"2025-03-03 17:59:59", Event::kTick, {}, S::kReady},
                                        {"2025-03-03 18:00:00", Event::kTick, {A::kStop}, S::kDraining},
                                        {"2025-03-03 18:00:01", Event::kStopped, {}, S::kStopped},
                                        {"2025-03-03 18:30:00", Event::kQueue, {A::kStart}, S::kStarting},
                                        {"2025-03-03 18:30:01", Event::kReady, {}, S::kReady},
                                        {"2025-03-03 18:30:01", Event::kStart, {}, S::kReady},
                                        {"2025-03-03 18:30:02", Event::kFinish, {}, S::kReady},
                                        {"2025-03-03 18:35:01", Event::kTick, {}, S::kReady},
                                        {"2025-03-03 18:35:02", Event::kTick, {A::kStop}, S::kDraining},
                                        {"2025-03-03 18:35:03", Event::kStopped, {}, S::kStopped},
                                        // Saturday: no window, no pre-warm.
                                        {"2025-03-08 08:58:00", Event::kTick, {}, S::kStopped},
                                        {"2025-03-08 09:00:00", Event::kTick, {}, S::kStopped},
                                    });
}

TEST(LifecyclePolicyTest, WithoutScheduleStartsOnRequestAndStopsAfterFiveIdleMinutes) {
  // In flight for 20 minutes: never idle while a request runs; the idle clock starts when it finishes.
  RunSteps(ConfigFromYaml(""), {
                                   {"2025-03-03 10:00:00", Event::kTick, {}, S::kStopped},
                                   {"2025-03-03 10:00:00", Event::kQueue, {A::kStart}, S::kStarting},
                                   {"2025-03-03 10:00:01", Event::kReady, {}, S::kReady},
                                   {"2025-03-03 10:00:01", Event::kStart, {}, S::kReady},
                                   {"2025-03-03 10:20:00", Event::kTick, {}, S::kReady},
                                   {"2025-03-03 10:20:00", Event::kFinish, {}, S::kReady},
                                   {"2025-03-03 10:24:59", Event::kTick, {}, S::kReady},
                                   // Queued but not yet started also keeps it up.
                                   {"2025-03-03 10:24:59", Event::kQueue, {}, S::kReady},
                                   {"2025-03-03 10:40:00", Event::kTick, {}, S::kReady},
                                   {"2025-03-03 10:40:00", Event::kStart, {}, S::kReady},
                                   {"2025-03-03 10:40:01", Event::kFinish, {}, S::kReady},
                                   {"2025-03-03 10:45:00", Event::kTick, {}, S::kReady},
                                   {"2025-03-03 10:45:01", Event::kTick, {A::kStop}, S::kDraining},
                                   {"2025-03-03 10:45:02", Event::kStopped, {}, S::kStopped},
                               });
}

TEST(LifecyclePolicyTest, MinReadyKeepsAFreshWorkerUp) {
  const char* yaml = "schedule: { idle_timeout: 1m, min_ready: 10m }";
  RunSteps(ConfigFromYaml(yaml), {
                                     {"2025-03-03 10:00:00", Event::kQueue, {A::kStart}, S::kStarting},
                                     {"2025-03-03 10:00:00", Event::kReady, {}, S::kReady},
                                     {"2025-03-03 10:00:00", Event::kStart, {}, S::kReady},
                                     {"2025-03-03 10:00:05", Event::kFinish, {}, S::kReady},
                                     {"2025-03-03 10:01:05", Event::kTick, {}, S::kReady},
                                     {"2025-03-03 10:09:59", Event::kTick, {}, S::kReady},
                                     {"2025-03-03 10:10:00", Event::kTick, {A::kStop}, S::kDraining},
                                 });
}

TEST(LifecyclePolicyTest, SleepsInsteadOfStoppingAndWakesOnRequest) {
  const char* yaml = "schedule: { idle_action: sleep }";
  RunSteps(ConfigFromYaml(yaml), {
                                     {"2025-03-03 10:00:00", Event::kQueue, {A::kStart}, S::kStarting},
                                     {"2025-03-03 10:00:01", Event::kReady, {}, S::kReady},
                                     {"2025-03-03 10:00:01", Event::kStart, {}, S::kReady},
                                     {"2025-03-03 10:00:02", Event::kFinish, {}, S::kReady},
                                     {"2025-03-03 10:05:02", Event::kTick, {A::kSleep}, S::kSleeping},
                                     {"2025-03-03 11:00:00", Event::kQueue, {A::kWake}, S::kWaking},
                                     {"2025-03-03 11:00:00", Event::kReady, {}, S::kReady},
                                 });
}

// America/New_York springs forward on 2025-03-09 (EST, UTC-5, to EDT, UTC-4) and falls back on 2025-11-02.
// The 09:00-17:00 window follows the wall clock, so its UTC times move by an hour across each change.
TEST(LifecyclePolicyTest, DaylightSavingDaysFollowTheWallClock) {
  const char* yaml = R"yaml(
schedule:
  timezone: America/New_York
  resident: [{ days: daily, from: "09:00", to: "17:00" }]
)yaml";
  RunSteps(ConfigFromYaml(yaml),
           {
               {"2025-03-08 13:59:59 UTC", Event::kTick, {}, S::kStopped},
               {"2025-03-08 14:00:00 UTC", Event::kTick, {A::kStart}, S::kStarting},
               {"2025-03-08 14:00:01 UTC", Event::kReady, {}, S::kReady},
               {"2025-03-08 21:59:59 UTC", Event::kTick, {}, S::kReady},
               {"2025-03-08 22:00:00 UTC", Event::kTick, {A::kStop}, S::kDraining},
               {"2025-03-08 22:00:01 UTC", Event::kStopped, {}, S::kStopped},
               // Spring forward: 09:00 EDT is 13:00 UTC.
               {"2025-03-09 12:59:59 UTC", Event::kTick, {}, S::kStopped},
               {"2025-03-09 13:00:00 UTC", Event::kTick, {A::kStart}, S::kStarting},
               {"2025-03-09 13:00:01 UTC", Event::kReady, {}, S::kReady},
               {"2025-03-09 20:59:59 UTC", Event::kTick, {}, S::kReady},
               {"2025-03-09 21:00:00 UTC", Event::kTick, {A::kStop}, S::kDraining},
               {"2025-03-09 21:00:01 UTC", Event::kStopped, {}, S::kStopped},
               // Fall back: 09:00 EDT on Nov 1 is 13:00 UTC, 09:00 EST on Nov 2 is 14:00.
               {"2025-11-01 13:00:00 UTC", Event::kTick, {A::kStart}, S::kStarting},
               {"2025-11-01 13:00:01 UTC", Event::kReady, {}, S::kReady},
               {"2025-11-01 21:00:00 UTC", Event::kTick, {A::kStop}, S::kDraining},
               {"2025-11-01 21:00:01 UTC", Event::kStopped, {}, S::kStopped},
               {"2025-11-02 13:00:00 UTC", Event::kTick, {}, S::kStopped},
               {"2025-11-02 14:00:00 UTC", Event::kTick, {A::kStart}, S::kStarting},
               {"2025-11-02 14:00:01 UTC", Event::kReady, {}, S::kReady},
               {"2025-11-02 21:59:59 UTC", Event::kTick, {}, S::kReady},
               {"2025-11-02 22:00:00 UTC", Event::kTick, {A::kStop}, S::kDraining},
           });
}

TEST(LifecyclePolicyTest, WindowCrossingMidnight) {
  const char* yaml = R"yaml(
schedule:
  timezone: Asia/Shanghai
  resident: [{ days: fri, from: "22:00", to: "06:00" }]
)yaml";
  // 2025-03-07 is a Friday; the window it opens runs into Saturday morning.
  RunSteps(ConfigFromYaml(yaml), {
                                     {"2025-03-07 21:59:59", Event::kTick, {}, S::kStopped},
                                     {"2025-03-07 22:00:00", Event::kTick, {A::kStart}, S::kStarting},
                                     {"2025-03-07 22:00:01", Event::kReady, {}, S::kReady},
                                     {"2025-03-08 00:00:00", Event::kTick, {}, S::kReady},
                                     {"2025-03-08 05:59:59", Event::kTick, {}, S::kReady},
                                     {"2025-03-08 06:00:00", Event::kTick, {A::kStop}, S::kDraining},
                                     {"2025-03-08 06:00:01", Event::kStopped, {}, S::kStopped},
                                     {"2025-03-08 22:00:00", Event::kTick, {}, S::kStopped},
                                 });
}

constexpr const char* kArchiveAfterADay = R"yaml(
schedule:
  timezone: Asia/Shanghai
  archive: { below_utilization: 0.05, window: 1d, on_request: restore }
)yaml";

TEST(LifecyclePolicyTest, ArchivesAfterAQuietWindowAndRestoresOnRequest) {
  RunSteps(ConfigFromYaml(kArchiveAfterADay),
           {
               {"2025-03-03 00:00:00", Event::kTick, {}, S::kStopped},
               {"2025-03-03 23:59:59", Event::kTick, {}, S::kStopped},
               {"2025-03-04 00:00:00", Event::kTick, {A::kArchive}, S::kArchived},
               // A request restores it with a cold start; it is archived again once idle.
               {"2025-03-04 10:00:00", Event::kQueue, {A::kRestore, A::kStart}, S::kStarting},
               {"2025-03-04 10:00:01", Event::kReady, {}, S::kReady},
               {"2025-03-04 10:00:01", Event::kStart, {}, S::kReady},
               {"2025-03-04 10:00:02", Event::kFinish, {}, S::kReady},
               {"2025-03-04 10:03:00", Event::kTick, {}, S::kReady},
               // The idle stop comes first; the archive rule, evaluated last, then finds it stopped.
               {"2025-03-04 10:05:02", Event::kTick, {A::kStop}, S::kDraining},
               {"2025-03-04 10:05:03", Event::kStopped, {}, S::kStopped},
               {"2025-03-04 10:06:02", Event::kTick, {A::kArchive}, S::kArchived},
           });
}

TEST(LifecyclePolicyTest, RejectModeAnswers409UntilAnOperatorRestores) {
  const char* yaml = R"yaml(
schedule:
  timezone: Asia/Shanghai
  archive: { below_utilization: 0.05, window: 1d, on_request: reject }
)yaml";
  RunSteps(ConfigFromYaml(yaml), {
                                     {"2025-03-03 00:00:00", Event::kTick, {}, S::kStopped},
                                     {"2025-03-04 00:00:00", Event::kTick, {A::kArchive}, S::kArchived},
                                     {"2025-03-04 09:00:00", Event::kQueue, {A::kReject}, S::kArchived},
                                     {"2025-03-04 09:00:01", Event::kTick, {}, S::kArchived},
                                     {"2025-03-04 09:30:00", Event::kRestore, {A::kRestore}, S::kStopped},
                                     {"2025-03-04 09:30:01", Event::kQueue, {A::kStart}, S::kStarting},
                                     {"2025-03-04 09:30:02", Event::kReady, {}, S::kReady},
                                     {"2025-03-04 09:30:02", Event::kStart, {}, S::kReady},
                                     {"2025-03-04 09:30:03", Event::kFinish, {}, S::kReady},
                                     // An operator's restore buys a fresh window: not archived when idle.
                                     {"2025-03-04 10:00:00", Event::kTick, {A::kStop}, S::kDraining},
                                     {"2025-03-04 10:00:01", Event::kStopped, {}, S::kStopped},
                                     {"2025-03-05 09:29:00", Event::kTick, {}, S::kStopped},
                                     {"2025-03-05 09:30:00", Event::kTick, {A::kArchive}, S::kArchived},
                                 });
}

TEST(LifecyclePolicyTest, OperatorArchiveDrainsRequestsInFlight) {
  RunSteps(ConfigFromYaml(kOffice),
           {
               {"2025-03-03 10:00:00", Event::kTick, {A::kStart}, S::kStarting},
               {"2025-03-03 10:00:01", Event::kReady, {}, S::kReady},
               {"2025-03-03 10:00:02", Event::kQueue, {}, S::kReady},
               {"2025-03-03 10:00:02", Event::kStart, {}, S::kReady},
               {"2025-03-03 10:00:03", Event::kArchive, {A::kArchive}, S::kDraining},
               {"2025-03-03 10:00:04", Event::kFinish, {A::kStop}, S::kDraining},
               {"2025-03-03 10:00:05", Event::kStopped, {}, S::kArchived},
               // Windows do not start an archived function.
               {"2025-03-04 09:00:00", Event::kTick, {}, S::kArchived},
               {"2025-03-04 09:00:01", Event::kRestore, {A::kRestore, A::kStart}, S::kStarting},
           });
}

TEST(LifecyclePolicyTest, FailedWorkerWithQueuedRequestsIsStartedAgainAtOnce) {
  // The supervisor's back-off spaces the starts of a crash loop; the policy asks again as soon as there is
  // demand.
  RunSteps(ConfigFromYaml(""), {
                                   {"2025-03-03 10:00:00", Event::kQueue, {A::kStart}, S::kStarting},
                                   {"2025-03-03 10:00:01", Event::kFailed, {A::kStart}, S::kStarting},
                                   {"2025-03-03 10:00:02", Event::kReady, {}, S::kReady},
                               });
}

TEST(LifecyclePolicyTest, FailedResidentWorkerWithoutDemandIsStartedAgainAfterADelay) {
  RunSteps(ConfigFromYaml(kOffice), {
                                        {"2025-03-03 10:00:00", Event::kTick, {A::kStart}, S::kStarting},
                                        {"2025-03-03 10:00:01", Event::kFailed, {}, S::kFailed},
                                        {"2025-03-03 10:00:05", Event::kTick, {}, S::kFailed},
                                        {"2025-03-03 10:00:06", Event::kTick, {A::kStart}, S::kStarting},
                                        {"2025-03-03 10:00:07", Event::kReady, {}, S::kReady},
                                    });
}

TEST(LifecyclePolicyTest, TransitionsKeepReasonsAndTimes) {
  gateway::FakeClock clock(absl::FromUnixSeconds(1'740'967'200));  // 2025-03-03 10:00 +08:00.
  Ledger ledger;
  LifecyclePolicy policy(ConfigFromYaml(kOffice), &clock, &ledger);
  policy.Tick();
  const std::vector<FunctionStatus> status = policy.Status();
  ASSERT_EQ(status.size(), 1u);
  EXPECT_EQ(status[0].state, FunctionState::kStarting);
  EXPECT_TRUE(status[0].resident);
  ASSERT_EQ(status[0].transitions.size(), 2u);
  EXPECT_EQ(status[0].transitions[1].reason, "resident window mon-fri 09:00-18:00");
  EXPECT_EQ(status[0].transitions[1].at, clock.Now());
  EXPECT_EQ(policy.NextDeadline(), absl::FromUnixSeconds(1'740'967'200 + 8 * 3600));  // 18:00 closes it.
}

}  // namespace
}  // namespace doze::lifecycle

// LifecyclePolicy::Reconfigure, as a configuration reload calls it: functions added, removed and changed.
#include <gtest/gtest.h>

#include "gateway/lifecycle/lifecycle_policy.h"
#include "tests/gateway/lifecycle/policy_test_util.h"
#include "yaml-cpp/yaml.h"

namespace doze::lifecycle {
namespace {

using testing::StepTime;

LifecycleConfig Parse(const std::string& yaml) {
  absl::StatusOr<LifecycleConfig> config = ParseLifecycleConfig(YAML::Load(yaml));
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : LifecycleConfig{};
}

std::vector<std::string> Summary(const std::vector<Decision>& decisions) {
  std::vector<std::string> out;
  for (const Decision& d : decisions) out.push_back(std::string(ActionName(d.action)) + " " + d.function);
  return out;
}

constexpr const char* kBefore = R"yaml(
schedule: { timezone: UTC, idle_timeout: 5m }
functions: { kept: {}, removed: {} }
)yaml";

// `kept` gains an all-day window, `added` comes with one, `removed` goes.
constexpr const char* kAfter = R"yaml(
schedule: { timezone: UTC, idle_timeout: 5m }
functions:
  kept: { schedule: { resident: [{ days: daily, from: "00:00", to: "24:00" }] } }
  added: { schedule: { resident: [{ days: daily, from: "00:00", to: "24:00" }] } }
)yaml";

// `kept` loses its window and gets a one-minute idle timeout; `removed` comes back.
constexpr const char* kLater = R"yaml(
schedule: { timezone: UTC, idle_timeout: 1m }
functions: { kept: {}, added: {}, removed: {} }
)yaml";

TEST(PolicyReconfigureTest, AddedFunctionsComeUnderThePolicyRemovedOnesLeaveAndSchedulesChange) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  gateway::FakeClock clock(StepTime("2025-03-03 10:00:00", utc));
  Ledger ledger;
  LifecyclePolicy policy(Parse(kBefore), &clock, &ledger);
  ASSERT_TRUE(policy.Load().ok());
  EXPECT_TRUE(policy.Tick().empty());
  EXPECT_EQ(Summary(policy.OnRequestQueued("removed")), std::vector<std::string>{"start removed"});
  policy.OnWorkerEvent("removed", WorkerEvent::kReady, "");
  policy.OnRequestStarted("removed", clock.Now());

  clock.Advance(absl::Minutes(10));  // 10:10
  EXPECT_EQ(Summary(policy.Reconfigure(Parse(kAfter))),
            (std::vector<std::string>{"start added", "start kept"}));
  EXPECT_TRUE(policy.Has("added"));
  EXPECT_TRUE(policy.Has("kept"));
  EXPECT_FALSE(policy.Has("removed"));
  std::vector<FunctionStatus> status = policy.Status();
  ASSERT_EQ(status.size(), 2u);
  EXPECT_EQ(status[0].name, "added");
  EXPECT_EQ(status[0].transitions.front().reason, "added by a configuration reload");
  EXPECT_EQ(status[0].transitions.back().reason, "resident window mon-sun 00:00-24:00");
  EXPECT_TRUE(status[0].resident);
  EXPECT_EQ(status[1].transitions.back().reason, "resident window mon-sun 00:00-24:00");

  // The removed function's ledger stopped at the reload: 10 minutes tracked, not a second more.
  clock.Advance(absl::Minutes(50));  // 11:00
  ledger.Settle(clock.Now());
  const absl::Time day = StepTime("2025-03-03 00:00:00", utc);
  LedgerTotals removed = ledger.Totals("removed", day, day + absl::Hours(24));
  EXPECT_DOUBLE_EQ(removed.elapsed_s(), 600);
  EXPECT_DOUBLE_EQ(removed.busy_s, 600);

  // Schedules apply from the reload on: `kept`, ready since 10:10 with nothing in flight, is outside any
  // window now and idle for longer than its new timeout, so it stops at once; `added` too.
  policy.OnWorkerEvent("kept", WorkerEvent::kReady, "");
  policy.OnWorkerEvent("added", WorkerEvent::kReady, "");
  clock.Advance(absl::Minutes(1));  // 11:01
  EXPECT_EQ(Summary(policy.Reconfigure(Parse(kLater))),
            (std::vector<std::string>{"stop added", "stop kept"}));
  EXPECT_EQ(policy.StateOf("kept"), FunctionState::kDraining);
  EXPECT_EQ(policy.StateOf("removed"), FunctionState::kStopped);

  // Back under the policy, the returning function's ledger resumes from the reload.
  clock.Advance(absl::Minutes(9));  // 11:10
  ledger.Settle(clock.Now());
  removed = ledger.Totals("removed", day, day + absl::Hours(24));
  EXPECT_DOUBLE_EQ(removed.elapsed_s(), 600 + 540);
  EXPECT_DOUBLE_EQ(removed.off_s, 540);
}

TEST(PolicyReconfigureTest, AReloadThatChangesNothingDecidesNothing) {
  gateway::FakeClock clock(StepTime("2025-03-03 10:00:00", absl::UTCTimeZone()));
  Ledger ledger;
  LifecyclePolicy policy(Parse(kAfter), &clock, &ledger);
  EXPECT_EQ(policy.Tick().size(), 2u);
  policy.OnWorkerEvent("kept", WorkerEvent::kReady, "");
  policy.OnWorkerEvent("added", WorkerEvent::kReady, "");
  clock.Advance(absl::Hours(1));
  EXPECT_TRUE(policy.Reconfigure(Parse(kAfter)).empty());
  EXPECT_EQ(policy.StateOf("kept"), FunctionState::kReady);
  EXPECT_EQ(policy.Status()[1].transitions.size(), 3u);  // gateway started, window start, worker started
}

}  // namespace
}  // namespace doze::lifecycle

#include "gateway/lifecycle/ledger.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gateway/lifecycle/lifecycle_policy.h"
#include "gateway/lifecycle/state_store.h"
#include "tests/gateway/lifecycle/policy_test_util.h"

namespace doze::lifecycle {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'740'960'000);  // 2025-03-03 00:00 UTC, on an hour.

// Off 0-100 s, warming 100-101, idle 101-200, busy 200-3700 (crosses the hour), idle 3700-4000, off after.
void FillSmallTable(Ledger& ledger) {
  const std::pair<int, GpuUse> table[] = {{0, GpuUse::kOff},     {100, GpuUse::kWarming},
                                          {101, GpuUse::kIdle},  {200, GpuUse::kBusy},
                                          {3700, GpuUse::kIdle}, {4000, GpuUse::kOff}};
  for (const auto& [second, use] : table) ledger.SetUse("fn", use, kT0 + absl::Seconds(second));
  ledger.RecordColdStart("fn", kT0 + absl::Seconds(100));
  ledger.RecordColdWait("fn", kT0 + absl::Seconds(101), absl::Seconds(1));
  ledger.Settle(kT0 + absl::Seconds(7200));
}

void ExpectHandComputed(const Ledger& ledger) {
  const LedgerTotals totals = ledger.Totals("fn", kT0, kT0 + absl::Hours(2));
  EXPECT_DOUBLE_EQ(totals.busy_s, 3500);
  EXPECT_DOUBLE_EQ(totals.idle_s, 99 + 300);
  EXPECT_DOUBLE_EQ(totals.warming_s, 1);
  EXPECT_DOUBLE_EQ(totals.off_s, 100 + 3200);
  EXPECT_DOUBLE_EQ(totals.gpu_s(), 3900);
  EXPECT_DOUBLE_EQ(totals.elapsed_s(), 7200);
  EXPECT_EQ(totals.cold_starts, 1);
  ASSERT_EQ(totals.cold_waits_s.size(), 1u);
  EXPECT_DOUBLE_EQ(totals.cold_waits_s[0], 1);
  EXPECT_DOUBLE_EQ(ledger.BusySeconds("fn", kT0, kT0 + absl::Hours(1)), 3400);  // The first hour's bucket.
  EXPECT_EQ(ledger.TrackingSince("fn"), kT0);
}

TEST(LedgerTest, HandComputedSmallTable) {
  Ledger ledger;
  FillSmallTable(ledger);
  ExpectHandComputed(ledger);
}

TEST(LedgerTest, ReopeningTheStateFileKeepsLedgerAndArchiveMarks) {
  const std::string path = ::testing::TempDir() + "/lifecycle_state_" + std::to_string(getpid()) + ".db";
  std::remove(path.c_str());
  {
    auto store = StateStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    Ledger ledger(store->get());
    ASSERT_TRUE(ledger.Load().ok());
    FillSmallTable(ledger);
    ASSERT_TRUE(ledger.Flush().ok());
    gateway::FakeClock clock(kT0 + absl::Hours(2));
    LifecyclePolicy policy(testing::ConfigFromYaml(""), &clock, &ledger, store->get());
    ASSERT_TRUE(policy.Load().ok());
    ASSERT_TRUE(policy.Archive("fn", "by test").ok());
    EXPECT_EQ(policy.StateOf("fn"), FunctionState::kArchived);
  }
  auto store = StateStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  Ledger ledger(store->get());
  ASSERT_TRUE(ledger.Load().ok());
  ExpectHandComputed(ledger);
  gateway::FakeClock clock(kT0 + absl::Hours(3));
  LifecyclePolicy policy(testing::ConfigFromYaml(""), &clock, &ledger, store->get());
  ASSERT_TRUE(policy.Load().ok());
  EXPECT_EQ(policy.StateOf("fn"), FunctionState::kArchived);
  EXPECT_GE(policy.Status()[0].transitions.size(), 3u);  // The archive before the restart is still listed.
  std::remove(path.c_str());
}

// Two gateways on one state file each wrote their own hours over the other's (the last writer won): the
// second is refused, naming the holder's pid, until the holder exits, however it exits.
TEST(LedgerTest, AStateFileHeldByALiveProcessIsRefused) {
  const std::string path = ::testing::TempDir() + "/lifecycle_locked_" + std::to_string(getpid()) + ".db";
  std::remove(path.c_str());
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto store = StateStore::Open(path);
    if (!store.ok()) _exit(1);
    pause();  // holds the file until killed
    _exit(0);
  }
  const auto holder = [&] {  // the pid in the lock file, once the child wrote it
    std::ifstream in(path + ".lock");
    pid_t pid = 0;
    in >> pid;
    return pid;
  };
  for (int i = 0; i < 500 && holder() != child; ++i) usleep(10'000);
  ASSERT_EQ(holder(), child);
  absl::StatusOr<std::unique_ptr<StateStore>> second = StateStore::Open(path);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(second.status().message(),
            absl::StrCat(path, " is in use by another process (pid ", child,
                         "): two gateways on one state file would overwrite each other's ledger"));
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  auto after = StateStore::Open(path);
  EXPECT_TRUE(after.ok()) << after.status();
  after->reset();
  std::remove(path.c_str());
  std::remove((path + ".lock").c_str());
}

}  // namespace
}  // namespace doze::lifecycle

#include "gateway/lifecycle/ledger.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gateway/lifecycle/cost_summary.h"
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

// A new GPU-hour price applies from when it is set: the hours before keep theirs, so the cost (a counter in
// /metrics) never falls when a reload lowers the price. Off time is never priced.
TEST(LedgerTest, APriceChangeAppliesFromThenOn) {
  Ledger ledger;
  ledger.SetGpuHourPrice(3.6);
  ledger.SetUse("fn", GpuUse::kBusy, kT0);
  ledger.Settle(kT0 + absl::Minutes(90));
  ledger.SetGpuHourPrice(0.36);
  ledger.SetUse("fn", GpuUse::kOff, kT0 + absl::Hours(2));  // 30 more busy minutes at the new price
  ledger.SetUse("fn", GpuUse::kIdle, kT0 + absl::Hours(3));
  ledger.Settle(kT0 + absl::Hours(4));
  const LedgerTotals totals = ledger.Totals("fn", kT0, kT0 + absl::Hours(5));
  EXPECT_DOUBLE_EQ(totals.cost, 1.5 * 3.6 + 0.5 * 0.36 + 1.0 * 0.36);
  EXPECT_DOUBLE_EQ(Summarize(totals, 0.36).cost, totals.cost);
  EXPECT_DOUBLE_EQ(Summarize(totals, 0.36).always_on_cost, 4 * 0.36);
}

// Hours a state file kept before it held prices are priced at the price in force when it is loaded; once
// written again they keep that price through later changes.
TEST(LedgerTest, HoursStoredWithoutAPriceTakeThePriceAtLoad) {
  const std::string path = ::testing::TempDir() + "/lifecycle_unpriced_" + std::to_string(getpid()) + ".db";
  std::remove(path.c_str());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db,
                   "CREATE TABLE ledger_hours (function TEXT NOT NULL, hour INTEGER NOT NULL, busy_s REAL "
                   "NOT NULL, idle_s REAL NOT NULL, warming_s REAL NOT NULL, off_s REAL NOT NULL, "
                   "cold_starts INTEGER NOT NULL, PRIMARY KEY (function, hour));"
                   "INSERT INTO ledger_hours VALUES ('fn', 1740960000, 1800, 900, 0, 900, 1);",
                   nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  for (double price : {2.0, 8.0}) {  // the second load finds the price the first one wrote
    auto store = StateStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    Ledger ledger(store->get());
    ledger.SetGpuHourPrice(price);
    ASSERT_TRUE(ledger.Load().ok());
    const LedgerTotals totals = ledger.Totals("fn", kT0, kT0 + absl::Hours(1));
    EXPECT_DOUBLE_EQ(totals.busy_s, 1800);
    EXPECT_DOUBLE_EQ(totals.cost, 0.75 * 2.0) << "loaded at " << price;
    ledger.RecordColdStart("fn", kT0 + absl::Minutes(59));  // marks the hour to be written
    ASSERT_TRUE(ledger.Flush().ok());
  }
  std::remove(path.c_str());
  std::remove((path + ".lock").c_str());
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

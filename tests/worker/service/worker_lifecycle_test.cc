// The worker's state machine as a table: each row an event and the state, health and answer it leads to.
#include "worker/service/worker_lifecycle.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace doze::service {
namespace {

TEST(WorkerLifecycleTest, TableOfTransitions) {
  bool serving = true;
  WorkerLifecycle lifecycle([&serving](bool now) { serving = now; });
  int idle_calls = 0;
  auto on_idle = [&idle_calls] { ++idle_calls; };
  struct Row {
    std::string event;
    absl::StatusCode answer;
    WorkerState state;
    bool serving;
  };
  const std::vector<Row> table = {
      {"admit", absl::StatusCode::kUnavailable, WorkerState::kLoading, false},
      {"wake", absl::StatusCode::kUnavailable, WorkerState::kLoading, false},
      {"set_serving", absl::StatusCode::kOk, WorkerState::kServing, true},
      {"admit", absl::StatusCode::kOk, WorkerState::kServing, true},
      {"sleep", absl::StatusCode::kOk, WorkerState::kSleeping, false},  // waits for the open call
      {"admit", absl::StatusCode::kFailedPrecondition, WorkerState::kSleeping, false},
      {"wake", absl::StatusCode::kFailedPrecondition, WorkerState::kSleeping, false},
      {"leave", absl::StatusCode::kOk, WorkerState::kSleeping, false},  // the sleep's on_idle runs
      {"end_sleep", absl::StatusCode::kOk, WorkerState::kSleeping, false},
      {"sleep", absl::StatusCode::kOk, WorkerState::kSleeping, false},  // idempotent: on_idle at once
      {"wake", absl::StatusCode::kOk, WorkerState::kSleeping, false},
      {"end_wake", absl::StatusCode::kOk, WorkerState::kServing, true},
      {"admit", absl::StatusCode::kOk, WorkerState::kServing, true},
      {"drain", absl::StatusCode::kOk, WorkerState::kDraining, false},
      {"admit", absl::StatusCode::kUnavailable, WorkerState::kDraining, false},
      {"sleep", absl::StatusCode::kUnavailable, WorkerState::kDraining, false},
      {"leave", absl::StatusCode::kOk, WorkerState::kDraining, false},  // the drain's on_idle runs
  };
  for (size_t i = 0; i < table.size(); ++i) {
    const Row& row = table[i];
    SCOPED_TRACE("row " + std::to_string(i) + ": " + row.event);
    absl::Status answer;
    if (row.event == "admit") answer = lifecycle.Admit();
    if (row.event == "leave") lifecycle.Leave();
    if (row.event == "set_serving") lifecycle.SetServing();
    if (row.event == "sleep") answer = lifecycle.BeginSleep(on_idle);
    if (row.event == "end_sleep") lifecycle.EndSleep(absl::OkStatus());
    if (row.event == "wake") answer = lifecycle.BeginWake();
    if (row.event == "end_wake") lifecycle.EndWake();
    if (row.event == "drain") lifecycle.BeginDrain(on_idle);
    EXPECT_EQ(answer.code(), row.answer) << answer;
    EXPECT_EQ(lifecycle.state(), row.state);
    EXPECT_EQ(serving, row.serving);
  }
  EXPECT_EQ(idle_calls, 3);  // the first sleep, the idempotent one, the drain
  EXPECT_EQ(lifecycle.num_open_calls(), 0);
}

TEST(WorkerLifecycleTest, FailedSleepServesAgain) {
  bool serving = false;
  WorkerLifecycle lifecycle([&serving](bool now) { serving = now; });
  lifecycle.SetServing();
  ASSERT_TRUE(lifecycle.BeginSleep([] {}).ok());
  EXPECT_FALSE(serving);
  lifecycle.EndSleep(absl::InternalError("device busy"));
  EXPECT_TRUE(serving);
  EXPECT_EQ(lifecycle.state(), WorkerState::kServing);
}

}  // namespace
}  // namespace doze::service

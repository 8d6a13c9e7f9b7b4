// ProcessSpawner with real child processes (/bin/sh): the exit reason carries the last line the child
// printed, even when the exit is noticed before that line has been read, and an exit is reported while a
// grandchild still holds the output pipe.
#include "gateway/workers/process_spawner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"

namespace doze::gateway {
namespace {

using ::testing::HasSubstr;

// Runs `script` under /bin/sh on a two-thread io_context (as the gateway runs its loop) and returns the
// reason on_exit got and how long after the spawn it came.
std::pair<std::string, std::chrono::milliseconds> RunToExit(const std::string& script) {
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back([&io] { io.run(); });
  ProcessSpawner spawner(io.get_executor());
  std::promise<std::string> reason;
  const auto start = std::chrono::steady_clock::now();
  auto child = spawner.Spawn({"/bin/sh", {"-c", script}, {}, "[test] "},
                             [&reason](std::string r) { reason.set_value(std::move(r)); });
  EXPECT_TRUE(child.ok()) << child.status();
  std::future<std::string> got = reason.get_future();
  std::string result = got.wait_for(std::chrono::seconds(10)) == std::future_status::ready ? got.get() : "";
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  guard.reset();
  io.stop();
  for (std::thread& t : threads) t.join();
  return {result, elapsed};
}

TEST(ProcessSpawnerTest, ExitReasonEndsWithTheLastLinePrinted) {
  // The exit and the last line race to the gateway; every run must see the line.
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(RunToExit("echo first; echo 'error: cannot load the model'; exit 3").first,
              "exited with status 3: error: cannot load the model")
        << "run " << i;
  }
}

TEST(ProcessSpawnerTest, LastLineWithoutNewlineCounts) {
  EXPECT_EQ(RunToExit("printf 'no newline at the end'; exit 4").first,
            "exited with status 4: no newline at the end");
}

TEST(ProcessSpawnerTest, SuccessfulExitHasNoLine) {
  EXPECT_EQ(RunToExit("echo done; exit 0").first, "exited with status 0");
}

// Killed from outside (SIGKILL: the OOM killer, an operator), the child's last line is not why it ended
// (a worker's was its ready event); a crash of its own (an abort) keeps it.
TEST(ProcessSpawnerTest, KilledBySignalIsNamed) {
  EXPECT_EQ(RunToExit("echo '{\"event\":\"ready\"}'; kill -9 $$").first, "killed by signal 9 (Killed)");
  EXPECT_EQ(RunToExit("echo going; kill -TERM $$").first, "killed by signal 15 (Terminated)");
  EXPECT_THAT(RunToExit("echo 'check failed: x > 0'; kill -ABRT $$").first,
              ::testing::EndsWith(": check failed: x > 0"));
}

TEST(ProcessSpawnerTest, GrandchildHoldingTheOutputDoesNotDelayTheExit) {
  const auto [reason, elapsed] = RunToExit("sleep 5 & echo 'left a child'; exit 2");
  EXPECT_EQ(reason, "exited with status 2: left a child");
  EXPECT_LT(elapsed, std::chrono::milliseconds(3000));
}

}  // namespace
}  // namespace doze::gateway

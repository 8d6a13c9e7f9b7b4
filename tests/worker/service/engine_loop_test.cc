// EngineLoop with its StepWatchdog, on the tiny CPU checkpoint: the watchdog sees the engine thread held
// outside a step (a call's sink that blocks while it is handed a step's output), and sees nothing while the
// loop serves ordinary requests or waits for work.
#include "worker/service/engine_loop.h"

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "tests/worker/service/test_worker.h"
#include "worker/service/step_watchdog.h"
#include "worker/service/worker_model.h"

namespace doze::service {
namespace {

using std::chrono::milliseconds;

// A sink that counts what it is handed and, while `hold` is set, blocks the engine thread in OnOutput until
// `release` is fulfilled.
class CountingSink : public RequestSink {
 public:
  explicit CountingSink(std::shared_future<void> release = {}) : release_(std::move(release)) {}

  void OnAdmitted() override {}
  void OnOutput(RequestOutput output) override {
    if (release_.valid()) release_.wait();
    outputs.fetch_add(1);
    if (output.finished) finished.fetch_add(1);
  }
  void OnStepEnd() override {}
  void OnError(absl::Status) override { errors.fetch_add(1); }
  void Release() override { released.set_value(); }

  std::atomic<int> outputs{0};
  std::atomic<int> finished{0};
  std::atomic<int> errors{0};
  std::promise<void> released;

 private:
  std::shared_future<void> release_;
};

EngineRequest Greedy(RequestSink* sink, int max_tokens) {
  EngineRequest request;
  request.prompt_token_ids = {1, 2, 3, 4, 5};
  request.params.temperature = 0.0f;
  request.params.max_tokens = max_tokens;
  request.params.ignore_eos = true;
  request.request_id = "test";
  request.sink = sink;
  return request;
}

class EngineLoopWatchdogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_.set_step_watchdog(&watchdog_);
    absl::Status started = loop_.Start([this]() -> absl::StatusOr<EngineParts> {
      ModelInstanceOptions options;
      options.model_dir = testing::TestWorker::ModelDir();
      options.backend = "cpu";
      options.num_threads = 2;
      absl::StatusOr<std::unique_ptr<WorkerModel>> model = WorkerModel::Load(options, {});
      if (!model.ok()) return model.status();
      model_ = *std::move(model);
      return EngineParts{&model_->runner(), [this] { return model_->NewEngine(); }};
    });
    ASSERT_TRUE(started.ok()) << started;
  }
  void TearDown() override { loop_.Stop(); }

  // Waits up to `limit` for a stall report.
  bool StallReported(milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (stalls_.load() == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(milliseconds(5));
    return stalls_.load() > 0;
  }

  std::atomic<int> stalls_{0};
  std::atomic<int64_t> stalled_for_us_{0};
  std::unique_ptr<WorkerModel> model_;
  StepWatchdog watchdog_{[this](absl::Duration running) {
    stalled_for_us_.store(absl::ToInt64Microseconds(running));
    stalls_.fetch_add(1);
  }};
  EngineLoop loop_;
};

TEST_F(EngineLoopWatchdogTest, SinkThatHoldsTheEngineThreadBetweenStepsIsAStall) {
  std::promise<void> release;
  CountingSink sink(release.get_future().share());
  watchdog_.Arm(absl::Milliseconds(150));
  loop_.Submit(Greedy(&sink, 4));
  // The step ends; the thread then hangs in the hand-over of its output, outside any step.
  const bool reported = StallReported(milliseconds(5000));
  release.set_value();
  ASSERT_TRUE(reported);
  EXPECT_GT(stalled_for_us_.load(), 150'000);
  ASSERT_EQ(sink.released.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(sink.outputs.load(), 4);  // the loop went on once released
  EXPECT_EQ(sink.finished.load(), 1);
  EXPECT_EQ(stalls_.load(), 1);
}

TEST_F(EngineLoopWatchdogTest, ServingAndWaitingForWorkAreNotStalls) {
  watchdog_.Arm(absl::Milliseconds(300));
  for (int i = 0; i < 3; ++i) {
    CountingSink sink;
    loop_.Submit(Greedy(&sink, 16));
    ASSERT_EQ(sink.released.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
    EXPECT_EQ(sink.outputs.load(), 16);
    EXPECT_EQ(sink.errors.load(), 0);
  }
  std::this_thread::sleep_for(milliseconds(700));  // idle for longer than the timeout
  EXPECT_EQ(stalls_.load(), 0);
}

TEST_F(EngineLoopWatchdogTest, SleepAndWakeAreWatched) {
  watchdog_.Arm(absl::Milliseconds(300));
  std::promise<absl::Status> slept, woke;
  loop_.Sleep([&](absl::Status status) { slept.set_value(status); });
  EXPECT_TRUE(slept.get_future().get().ok());
  loop_.Wake([&](absl::Status status) { woke.set_value(status); });
  EXPECT_TRUE(woke.get_future().get().ok());
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_EQ(stalls_.load(), 0);  // quick ones are not stalls
  // A sleep whose completion holds the engine thread (its `done` runs there) is.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  loop_.Sleep([released](absl::Status) { released.wait(); });
  const bool reported = StallReported(milliseconds(5000));
  release.set_value();
  EXPECT_TRUE(reported);
}

}  // namespace
}  // namespace doze::service

// The worker as the gateway sees it: a real doze-worker process on a unix socket, the CPU backend and the
// tiny checkpoint. Streaming, cancellation, deadlines, health, sleep/wake, drain and bad requests.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/worker/service/test_worker.h"

namespace doze::service::testing {
namespace {

using std::chrono::milliseconds;

// The concatenated token ids of a finished stream, its finish reason and its status.
struct StreamResult {
  grpc::Status status;
  std::vector<int32_t> ids;
  std::string text;
  v1::FinishReason finish_reason = v1::FINISH_REASON_UNSPECIFIED;
  v1::GenerateResponse last;
};

StreamResult RunStream(WorkerClient& client, const v1::GenerateRequest& request) {
  StreamResult result;
  result.status = client.Generate(request, [&](const v1::GenerateResponse& response) {
    result.ids.insert(result.ids.end(), response.token_ids().begin(), response.token_ids().end());
    result.text += response.text_delta();
    if (response.finish_reason() != v1::FINISH_REASON_UNSPECIFIED)
      result.finish_reason = response.finish_reason();
    result.last = response;
  });
  return result;
}

// A stream on its own thread that tells when its first response has arrived.
class BackgroundStream {
 public:
  BackgroundStream(WorkerClient& client, v1::GenerateRequest request,
                   std::optional<milliseconds> timeout = {})
      : thread_([this, &client, request = std::move(request), timeout] {
          result_.status = client.Generate(
              request,
              [this](const v1::GenerateResponse& response) {
                std::lock_guard<std::mutex> lock(mu_);
                result_.ids.insert(result_.ids.end(), response.token_ids().begin(),
                                   response.token_ids().end());
                if (response.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
                  result_.finish_reason = response.finish_reason();
                }
                started_ = true;
                cv_.notify_all();
              },
              timeout, &context_);
          std::lock_guard<std::mutex> lock(mu_);
          done_ = true;
          cv_.notify_all();
        }) {}
  ~BackgroundStream() {
    if (thread_.joinable()) thread_.join();
  }

  // Waits until the first response arrived (true) or the stream ended without one (false).
  bool WaitStarted() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return started_ || done_; });
    return started_;
  }
  void Cancel() { context_.TryCancel(); }
  StreamResult Join() {
    thread_.join();
    return result_;
  }

 private:
  grpc::ClientContext context_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false;
  bool done_ = false;
  StreamResult result_;
  std::thread thread_;
};

v1::StatsResponse GetStats(WorkerClient& client) {
  v1::StatsResponse stats;
  EXPECT_TRUE(client.Stats(&stats).ok());
  return stats;
}

// Polls Stats (the worker pushes nothing) until no sequence runs and no KV block is held; bounded.
bool WaitForIdleEngine(WorkerClient& client) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    v1::StatsResponse stats = GetStats(client);
    if (stats.counters().num_running() == 0 && stats.kv_cache().blocks_used() == 0) return true;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return false;
}

using WorkerProcessTest = SharedWorkerTest;

TEST_F(WorkerProcessTest, LastResponseCarriesUsageAndTimings) {
  StreamResult result = RunStream(client(), TextRequest("Hello there", 8));
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.ids.size(), 8u);
  EXPECT_EQ(result.finish_reason, v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(result.last.usage().completion_tokens(), 8);
  EXPECT_EQ(result.last.usage().prompt_tokens(), 2);
  EXPECT_GT(result.last.timings().time_to_first_token_ms(), 0.0);
  EXPECT_GE(result.last.timings().total_ms(), result.last.timings().time_to_first_token_ms());
}

TEST_F(WorkerProcessTest, CancelMidStreamFreesBlocks) {
  BackgroundStream stream(client(), TextRequest("Count to a large number", kLongMaxTokens));
  ASSERT_TRUE(stream.WaitStarted());
  EXPECT_GT(GetStats(client()).kv_cache().blocks_used(), 0);
  stream.Cancel();
  StreamResult result = stream.Join();
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_LT(result.ids.size(), static_cast<size_t>(kLongMaxTokens));
  EXPECT_TRUE(WaitForIdleEngine(client()));
}

TEST_F(WorkerProcessTest, DeadlineEndsTheCallAndFreesBlocks) {
  BackgroundStream stream(client(), TextRequest("Count to a large number", kLongMaxTokens),
                          milliseconds(300));
  StreamResult result = stream.Join();
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(WaitForIdleEngine(client()));
}

TEST_F(WorkerProcessTest, SleepThenWakeGivesIdenticalGreedyOutput) {
  const v1::GenerateRequest request = TextRequest("The weather today is", 24);
  StreamResult before = RunStream(client(), request);
  ASSERT_TRUE(before.status.ok());

  v1::SleepResponse slept;
  ASSERT_TRUE(client().Sleep(&slept).ok());
  EXPECT_EQ(GetStats(client()).state(), v1::WORKER_STATE_SLEEPING);
  std::string health;
  ASSERT_TRUE(client().Health(&health).ok());
  EXPECT_EQ(health, "NOT_SERVING");
  EXPECT_EQ(RunStream(client(), request).status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(client().Sleep(&slept).ok()) << "Sleep is idempotent";

  v1::WakeResponse woke;
  ASSERT_TRUE(client().Wake(&woke).ok());
  EXPECT_EQ(GetStats(client()).state(), v1::WORKER_STATE_SERVING);
  ASSERT_TRUE(client().Health(&health).ok());
  EXPECT_EQ(health, "SERVING");
  StreamResult after = RunStream(client(), request);
  ASSERT_TRUE(after.status.ok());
  EXPECT_EQ(after.ids, before.ids);
  EXPECT_EQ(after.text, before.text);
}

TEST_F(WorkerProcessTest, StatsReportsCountersAndStartup) {
  v1::StatsResponse stats = GetStats(client());
  EXPECT_EQ(stats.function(), "test");
  EXPECT_EQ(stats.backend(), "cpu");
  EXPECT_EQ(stats.state(), v1::WORKER_STATE_SERVING);
  EXPECT_EQ(stats.max_model_len(), 32768);
  EXPECT_GT(stats.kv_cache().blocks_total(), 0);
  EXPECT_GT(stats.startup().weights_ms(), 0.0);
  EXPECT_GE(stats.startup().first_step_ms(), stats.startup().weights_ms());
  EXPECT_GE(stats.startup().ready_ms(), stats.startup().first_step_ms());
}

struct BadRequest {
  const char* name;
  v1::GenerateRequest request;
  const char* field;  // the error message names it
};

std::vector<BadRequest> BadRequests() {
  auto text = [](int max_tokens) { return TextRequest("Hello", max_tokens); };
  std::vector<BadRequest> table;
  table.push_back({"no prompt", v1::GenerateRequest(), "prompt"});
  table.push_back({"empty text", TextRequest("", 4), "text"});
  v1::GenerateRequest empty_messages = text(4);
  empty_messages.mutable_messages();
  table.push_back({"empty messages", empty_messages, "messages"});
  v1::GenerateRequest empty_ids = text(4);
  empty_ids.mutable_token_ids();
  table.push_back({"empty token ids", empty_ids, "token_ids"});
  v1::GenerateRequest bad_role = text(4);
  v1::ChatMessage* message = bad_role.mutable_messages()->add_messages();
  message->set_role("wizard");
  message->set_content("hi");
  table.push_back({"unknown role", bad_role, "messages[0].role"});
  v1::GenerateRequest bad_id = text(4);
  bad_id.mutable_token_ids()->add_ids(151936);
  table.push_back({"token id outside the vocabulary", bad_id, "token_ids[0]"});
  table.push_back({"longer than the context", text(40000), "max_tokens"});
  table.push_back({"max_tokens zero", text(0), "max_tokens"});
  v1::GenerateRequest temperature = text(4);
  temperature.mutable_sampling()->set_temperature(-1.0f);
  table.push_back({"negative temperature", temperature, "temperature"});
  v1::GenerateRequest top_p = text(4);
  top_p.mutable_sampling()->set_top_p(0.0f);
  table.push_back({"top_p zero", top_p, "top_p"});
  v1::GenerateRequest min_p = text(4);
  min_p.mutable_sampling()->set_min_p(2.0f);
  table.push_back({"min_p above one", min_p, "min_p"});
  v1::GenerateRequest top_logprobs = text(4);
  top_logprobs.mutable_sampling()->set_logprobs(true);
  top_logprobs.mutable_sampling()->set_top_logprobs(-3);
  table.push_back({"negative top_logprobs", top_logprobs, "top_logprobs"});
  v1::GenerateRequest schema = text(4);
  schema.mutable_response_format()->set_type(v1::ResponseFormat::TYPE_JSON_SCHEMA);
  schema.mutable_response_format()->set_json_schema("{not json");
  table.push_back({"schema not JSON", schema, "response_format.json_schema"});
  return table;
}

TEST_F(WorkerProcessTest, BadRequestsGetInvalidArgumentAndTheWorkerKeepsServing) {
  for (const BadRequest& bad : BadRequests()) {
    SCOPED_TRACE(bad.name);
    StreamResult result = RunStream(client(), bad.request);
    EXPECT_EQ(result.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << result.status.error_message();
    EXPECT_NE(result.status.error_message().find(bad.field), std::string::npos)
        << result.status.error_message();
    StreamResult good = RunStream(client(), TextRequest("Hello", 2));
    EXPECT_TRUE(good.status.ok()) << good.status.error_message();
  }
}

TEST(WorkerHealthTest, MovesFromNotServingToServing) {
  TestWorker worker;
  // Watch from the first moment the socket accepts: loading (the tokenizer alone) takes far longer than that.
  std::vector<std::string> seen;
  worker.client().WatchHealth(
      [&seen](const std::string& status) {
        seen.push_back(status);
        return status != "SERVING";
      },
      std::chrono::seconds(60));
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen.front(), "NOT_SERVING");
  EXPECT_EQ(seen.back(), "SERVING");
  worker.WaitReady();
}

// Starts three streams, waits until each has its first token, drains (or SIGTERMs) and checks that every
// stream ran to its end and the worker exited 0.
void ExpectDrainFinishesInFlightStreams(bool by_signal) {
  TestWorker worker;
  worker.WaitReady();
  constexpr int kTokens = 300;
  std::vector<std::unique_ptr<BackgroundStream>> streams;
  for (int i = 0; i < 3; ++i) {
    streams.push_back(std::make_unique<BackgroundStream>(
        worker.client(), TextRequest("Stream " + std::to_string(i), kTokens)));
  }
  for (auto& stream : streams) ASSERT_TRUE(stream->WaitStarted());
  if (by_signal) {
    worker.process().Signal(SIGTERM);
  } else {
    v1::DrainResponse drained;
    ASSERT_TRUE(worker.client().Drain(&drained).ok());
    EXPECT_EQ(drained.num_drained(), 3);
  }
  for (auto& stream : streams) {
    StreamResult result = stream->Join();
    EXPECT_TRUE(result.status.ok()) << result.status.error_message();
    EXPECT_EQ(result.ids.size(), static_cast<size_t>(kTokens));
    EXPECT_EQ(result.finish_reason, v1::FINISH_REASON_LENGTH);
  }
  absl::StatusOr<int> code = worker.process().Wait(std::chrono::seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

TEST(WorkerDrainTest, DrainFinishesInFlightStreamsAndExitsZero) { ExpectDrainFinishesInFlightStreams(false); }

TEST(WorkerDrainTest, SigtermDrainsToo) { ExpectDrainFinishesInFlightStreams(true); }

TEST(WorkerDrainTest, NewCallsAreRefusedWhileDraining) {
  TestWorker worker;
  worker.WaitReady();
  BackgroundStream stream(worker.client(), TextRequest("Keep going", 2000));
  ASSERT_TRUE(stream.WaitStarted());
  worker.process().Signal(SIGTERM);
  // The signal is handled on its own thread; Stats says when the drain has begun.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (GetStats(worker.client()).state() != v1::WORKER_STATE_DRAINING &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  EXPECT_EQ(RunStream(worker.client(), TextRequest("Late", 2)).status.error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(stream.Join().status.ok());
  absl::StatusOr<int> code = worker.process().Wait(std::chrono::seconds(30));
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0);
}

}  // namespace
}  // namespace doze::service::testing

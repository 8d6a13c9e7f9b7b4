// GenerateStream against a real doze-worker process (CPU backend, tiny checkpoint): calls multiplexed on one
// stream get what separate Generate calls get, each its own status, and cancellations reach the engine.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/worker/service/test_worker.h"

namespace doze::service::testing {
namespace {

using std::chrono::milliseconds;

// What one call of a stream received.
struct CallResult {
  std::vector<int32_t> ids;
  std::string text;
  v1::GenerateResponse last;
  bool ended = false;
  int code = -1;
  std::string message;
};

// A GenerateStream read on its own thread: events gathered per call id, messages and events counted.
class StreamClient {
 public:
  explicit StreamClient(const std::string& target)
      : stub_(v1::Worker::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()))),
        stream_(stub_->GenerateStream(&context_)),
        reader_([this] { Read(); }) {}
  ~StreamClient() {
    context_.TryCancel();
    reader_.join();
  }

  // Sends starts (and cancels: an unset request) in one message.
  bool Send(const std::vector<std::pair<uint64_t, std::optional<v1::GenerateRequest>>>& commands) {
    v1::GenerateStreamRequest message;
    for (const auto& [id, request] : commands) {
      if (request) Forget(id);
      v1::StreamCommand* command = message.add_commands();
      command->set_call_id(id);
      if (request) {
        *command->mutable_start() = *request;
      } else {
        command->mutable_cancel();
      }
    }
    return stream_->Write(message);
  }
  bool Start(uint64_t id, const v1::GenerateRequest& request) { return Send({{id, request}}); }
  bool Cancel(uint64_t id) { return Send({{id, std::nullopt}}); }
  void HalfClose() { stream_->WritesDone(); }
  // Drops what an ended call received, before its id is used again.
  void Forget(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.erase(id);
  }
  void CancelStream() { context_.TryCancel(); }

  // Waits until call `id` has at least `tokens` token ids or has ended.
  CallResult WaitTokens(uint64_t id, size_t tokens) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(60),
                 [&] { return calls_[id].ids.size() >= tokens || calls_[id].ended; });
    return calls_[id];
  }
  CallResult WaitEnded(uint64_t id) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(60), [&] { return calls_[id].ended; });
    return calls_[id];
  }
  // The stream's own status, once the worker has finished it.
  grpc::Status WaitFinished() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(60), [&] { return finished_; });
    return status_;
  }
  int messages() {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }
  int events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

 private:
  void Read() {
    v1::GenerateStreamResponse response;
    while (stream_->Read(&response)) {
      std::lock_guard<std::mutex> lock(mu_);
      ++messages_;
      for (const v1::CallEvent& event : response.events()) {
        ++events_;
        CallResult& call = calls_[event.call_id()];
        EXPECT_FALSE(call.ended) << "an event after call " << event.call_id() << "'s status";
        if (event.has_response()) {
          call.ids.insert(call.ids.end(), event.response().token_ids().begin(),
                          event.response().token_ids().end());
          call.text += event.response().text_delta();
          call.last = event.response();
        }
        if (event.has_status()) {
          call.ended = true;
          call.code = event.status().code();
          call.message = event.status().message();
        }
      }
      cv_.notify_all();
    }
    grpc::Status status = stream_->Finish();
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
    status_ = status;
    cv_.notify_all();
  }

  std::unique_ptr<v1::Worker::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::GenerateStreamRequest, v1::GenerateStreamResponse>> stream_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, CallResult> calls_;
  int messages_ = 0;
  int events_ = 0;
  bool finished_ = false;
  grpc::Status status_;
  std::thread reader_;  // last: it starts once the members it uses exist
};

class GenerateStreamTest : public SharedWorkerTest {
 protected:
  static v1::StatsResponse Stats() {
    v1::StatsResponse stats;
    EXPECT_TRUE(client().Stats(&stats).ok());
    return stats;
  }
  // Polls Stats until `num_aborted` reaches `expected` and the engine is idle; bounded.
  static bool WaitForAbortsAndIdle(int64_t expected) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      v1::StatsResponse stats = Stats();
      if (stats.counters().num_aborted() == expected && stats.counters().num_running() == 0 &&
          stats.kv_cache().blocks_used() == 0) {
        return true;
      }
      std::this_thread::sleep_for(milliseconds(2));
    }
    return false;
  }
  // A Generate call to its end: the ids and text a stream's call must match.
  static CallResult RunGenerate(const v1::GenerateRequest& request) {
    CallResult result;
    grpc::Status status = client().Generate(request, [&](const v1::GenerateResponse& response) {
      result.ids.insert(result.ids.end(), response.token_ids().begin(), response.token_ids().end());
      result.text += response.text_delta();
      result.last = response;
    });
    result.ended = true;
    result.code = status.error_code();
    result.message = status.error_message();
    return result;
  }
};

TEST_F(GenerateStreamTest, TwoInterleavedCallsGetWhatSeparateGenerateCallsGet) {
  const v1::GenerateRequest first = TextRequest("The weather today is", 24);
  const v1::GenerateRequest second = TextRequest("Count with me: one, two", 20);
  CallResult first_alone = RunGenerate(first);
  CallResult second_alone = RunGenerate(second);
  ASSERT_EQ(first_alone.code, 0) << first_alone.message;
  ASSERT_EQ(second_alone.code, 0) << second_alone.message;

  StreamClient stream(target());
  ASSERT_TRUE(stream.Send({{7, first}, {3, second}}));
  CallResult a = stream.WaitEnded(7);
  CallResult b = stream.WaitEnded(3);
  EXPECT_EQ(a.code, 0) << a.message;
  EXPECT_EQ(b.code, 0) << b.message;
  EXPECT_EQ(a.ids, first_alone.ids);
  EXPECT_EQ(a.text, first_alone.text);
  EXPECT_EQ(b.ids, second_alone.ids);
  EXPECT_EQ(b.text, second_alone.text);
  EXPECT_EQ(a.last.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(a.last.usage().completion_tokens(), 24);
  EXPECT_EQ(a.last.usage().prompt_tokens(), first_alone.last.usage().prompt_tokens());
  EXPECT_GT(a.last.timings().total_ms(), 0.0);
  // The two calls run in the same engine steps, and a step's outputs leave in one message.
  EXPECT_LT(stream.messages(), stream.events()) << stream.messages() << " messages";
}

TEST_F(GenerateStreamTest, RefusedCallGetsItsOwnStatusWhileTheOtherGoesOn) {
  StreamClient stream(target());
  ASSERT_TRUE(stream.Start(1, TextRequest("Keep going", 64)));
  ASSERT_GE(stream.WaitTokens(1, 1).ids.size(), 1u);
  ASSERT_TRUE(stream.Start(2, TextRequest("Hello", 40000)));
  ASSERT_TRUE(stream.Start(3, v1::GenerateRequest()));
  CallResult too_long = stream.WaitEnded(2);
  EXPECT_EQ(too_long.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(too_long.message.find("max_tokens"), std::string::npos) << too_long.message;
  EXPECT_TRUE(too_long.ids.empty());
  CallResult no_prompt = stream.WaitEnded(3);
  EXPECT_EQ(no_prompt.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(no_prompt.message.find("prompt"), std::string::npos) << no_prompt.message;
  CallResult going = stream.WaitEnded(1);
  EXPECT_EQ(going.code, 0) << going.message;
  EXPECT_EQ(going.ids.size(), 64u);
  // The id of an ended call may be used again.
  ASSERT_TRUE(stream.Start(2, TextRequest("Again", 4)));
  EXPECT_EQ(stream.WaitEnded(2).ids.size(), 4u);
}

TEST_F(GenerateStreamTest, CancellingOneCallAbortsOnlyIt) {
  const int64_t aborted_before = Stats().counters().num_aborted();
  StreamClient stream(target());
  ASSERT_TRUE(stream.Send({{1, TextRequest("Count to a large number", kLongMaxTokens)},
                           {2, TextRequest("Tell a short story", 200)}}));
  ASSERT_GE(stream.WaitTokens(1, 2).ids.size(), 2u);
  EXPECT_GT(Stats().kv_cache().blocks_used(), 0);
  ASSERT_TRUE(stream.Cancel(1));
  CallResult cancelled = stream.WaitEnded(1);
  EXPECT_EQ(cancelled.code, grpc::StatusCode::CANCELLED);
  EXPECT_LT(cancelled.ids.size(), static_cast<size_t>(kLongMaxTokens));
  CallResult other = stream.WaitEnded(2);
  EXPECT_EQ(other.code, 0) << other.message;
  EXPECT_EQ(other.ids.size(), 200u);
  EXPECT_TRUE(WaitForAbortsAndIdle(aborted_before + 1)) << Stats().DebugString();
  ASSERT_TRUE(stream.Cancel(1)) << "the stream takes a cancel for an ended call";  // ignored: call 4 runs
  ASSERT_TRUE(stream.Start(4, TextRequest("Still there?", 3)));
  EXPECT_EQ(stream.WaitEnded(4).code, 0);
}

TEST_F(GenerateStreamTest, CancellingTheStreamAbortsAllItsCalls) {
  const int64_t aborted_before = Stats().counters().num_aborted();
  auto stream = std::make_unique<StreamClient>(target());
  for (uint64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(stream->Start(id, TextRequest("Stream " + std::to_string(id), kLongMaxTokens)));
  }
  for (uint64_t id = 1; id <= 3; ++id) ASSERT_GE(stream->WaitTokens(id, 1).ids.size(), 1u);
  stream->CancelStream();
  EXPECT_EQ(stream->WaitFinished().error_code(), grpc::StatusCode::CANCELLED);
  stream.reset();
  EXPECT_TRUE(WaitForAbortsAndIdle(aborted_before + 3)) << Stats().DebugString();
  EXPECT_EQ(Stats().num_active_calls(), 0);
}

TEST_F(GenerateStreamTest, HalfClosingTheStreamCancelsItsCallsAndEndsItOk) {
  const int64_t aborted_before = Stats().counters().num_aborted();
  StreamClient stream(target());
  ASSERT_TRUE(
      stream.Send({{1, TextRequest("One", kLongMaxTokens)}, {2, TextRequest("Two", kLongMaxTokens)}}));
  ASSERT_GE(stream.WaitTokens(1, 1).ids.size(), 1u);
  ASSERT_GE(stream.WaitTokens(2, 1).ids.size(), 1u);
  stream.HalfClose();
  EXPECT_EQ(stream.WaitEnded(1).code, grpc::StatusCode::CANCELLED);
  EXPECT_EQ(stream.WaitEnded(2).code, grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(stream.WaitFinished().ok());
  EXPECT_TRUE(WaitForAbortsAndIdle(aborted_before + 2)) << Stats().DebugString();
}

TEST(GenerateStreamDrainTest, DrainWaitsForTheStreamsCallsAndRefusesNewOnes) {
  TestWorker worker;
  worker.WaitReady();
  StreamClient stream(worker.target());
  ASSERT_TRUE(stream.Start(1, TextRequest("Keep going", 300)));
  ASSERT_GE(stream.WaitTokens(1, 1).ids.size(), 1u);
  std::thread drain([&worker] {
    v1::DrainResponse drained;
    EXPECT_TRUE(worker.client().Drain(&drained).ok());
    EXPECT_EQ(drained.num_drained(), 1);
  });
  // Stats says when the drain has begun.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  v1::StatsResponse stats;
  while (std::chrono::steady_clock::now() < deadline && worker.client().Stats(&stats).ok() &&
         stats.state() != v1::WORKER_STATE_DRAINING) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  ASSERT_TRUE(stream.Start(2, TextRequest("Late", 2)));
  EXPECT_EQ(stream.WaitEnded(2).code, grpc::StatusCode::UNAVAILABLE);
  CallResult first = stream.WaitEnded(1);
  EXPECT_EQ(first.code, 0) << first.message;
  EXPECT_EQ(first.ids.size(), 300u);
  drain.join();
}

}  // namespace
}  // namespace doze::service::testing

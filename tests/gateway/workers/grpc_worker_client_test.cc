// The gateway's gRPC client against the stand-in worker: Generate calls multiplexed on one GenerateStream per
// connection, each ended exactly once (its status, a broken stream, a cancel) and freed after its OnDone.
#include "gateway/workers/grpc_worker_client.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "proto/worker.grpc.pb.h"
#include "worker/service/child_worker.h"

namespace doze::gateway {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A doze-fake-worker on a unix socket in a fresh temporary directory; started again on the same socket by
// Restart.
class FakeWorker {
 public:
  // With `step_clock`, every call's tokens come due on the ticks of one clock, as from an engine's steps.
  explicit FakeWorker(int token_delay_ms, bool step_clock = false)
      : token_delay_ms_(token_delay_ms), step_clock_(step_clock) {
    char dir[] = "/tmp/doze-client-test-XXXXXX";
    EXPECT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    address_ = "unix:" + dir_ + "/worker.sock";
    Restart();
  }
  ~FakeWorker() {
    child_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Starts the process (killing one still running) and waits for its ready line.
  void Restart() {
    child_.reset();
    std::filesystem::remove(dir_ + "/worker.sock");
    setenv("DOZE_FAKE_TOKEN_DELAY_MS", std::to_string(token_delay_ms_).c_str(), 1);
    setenv("DOZE_FAKE_STEP_CLOCK", step_clock_ ? "1" : "0", 1);
    const char* build = std::getenv("DOZE_BUILD_DIR");
    absl::StatusOr<service::ChildWorker> child = service::ChildWorker::Spawn(
        {std::string(build != nullptr ? build : "build") + "/tests/doze-fake-worker", "--function", "test",
         "--listen", address_});
    ASSERT_TRUE(child.ok()) << child.status();
    child_ = std::make_unique<service::ChildWorker>(*std::move(child));
    absl::StatusOr<std::string> line = child_->ReadLine(seconds(30));
    ASSERT_TRUE(line.ok()) << line.status();
    ASSERT_NE(line->find("\"ready\""), std::string::npos) << *line;
  }
  void Kill() {
    child_->Signal(SIGKILL);
    EXPECT_TRUE(child_->Wait(seconds(10)).ok());
  }
  const std::string& address() const { return address_; }

 private:
  const int token_delay_ms_;
  const bool step_clock_;
  std::string dir_;
  std::string address_;
  std::unique_ptr<service::ChildWorker> child_;
};

// Records one call: its responses' text, the threads that handed them over, and every OnDone.
class Recorder : public GenerateObserver {
 public:
  void OnResponse(const v1::GenerateResponse& response, std::chrono::steady_clock::time_point) override {
    char thread[16] = "";
    pthread_getname_np(pthread_self(), thread, sizeof(thread));
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_EQ(done_, 0) << "a response after OnDone";
    ++responses_;
    text_ += response.text_delta();
    threads_.insert(thread);
    cv_.notify_all();
  }
  void OnDone(const absl::Status& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++done_;
    status_ = status;
    cv_.notify_all();
  }

  bool WaitResponses(int count) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, seconds(30), [&] { return responses_ >= count || done_ > 0; }) &&
           responses_ >= count;
  }
  absl::Status WaitDone() {
    std::unique_lock<std::mutex> lock(mu_);
    EXPECT_TRUE(cv_.wait_for(lock, seconds(30), [&] { return done_ > 0; })) << "no OnDone";
    return status_;
  }
  int done() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }
  std::string text() {
    std::lock_guard<std::mutex> lock(mu_);
    return text_;
  }
  std::set<std::string> threads() {
    std::lock_guard<std::mutex> lock(mu_);
    return threads_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int responses_ = 0;
  int done_ = 0;
  absl::Status status_;
  std::string text_;
  std::set<std::string> threads_;
};

v1::GenerateRequest Request(int max_tokens) {
  v1::GenerateRequest request;
  request.mutable_token_ids()->add_ids(1);
  request.mutable_sampling()->set_max_tokens(max_tokens);
  return request;
}

std::string Tokens(int count) {
  std::string text;
  for (int i = 0; i < count; ++i) text += "t" + std::to_string(i) + " ";
  return text;
}

// Polls until `weak` has expired (the completion thread drops its reference just after OnDone returns).
template <typename T>
bool WaitExpired(const std::weak_ptr<T>& weak) {
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while (!weak.expired() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(1));
  return weak.expired();
}

v1::StatsResponse Stats(const std::string& address) {
  auto stub = v1::Worker::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  v1::StatsResponse stats;
  EXPECT_TRUE(stub->Stats(&context, v1::StatsRequest(), &stats).ok());
  return stats;
}

// `count` calls started on one client, call i for max_tokens(i) tokens, each with its own Recorder.
struct StartedCalls {
  std::vector<std::shared_ptr<Recorder>> recorders;
  std::vector<std::shared_ptr<GenerateCall>> calls;
};

template <typename MaxTokens>
StartedCalls StartCalls(WorkerClient& client, int count, const MaxTokens& max_tokens) {
  StartedCalls started;
  for (int i = 0; i < count; ++i) {
    started.recorders.push_back(std::make_shared<Recorder>());
    started.calls.push_back(client.Generate(Request(max_tokens(i)), started.recorders.back()));
  }
  return started;
}

// With 0, 1 and 2 delivery lanes beside the completion thread (server.delivery_threads): every call's events
// in order, its OnDone once and last, wherever its lane.
class GrpcWorkerClientLanesTest : public ::testing::TestWithParam<int> {};

TEST_P(GrpcWorkerClientLanesTest, ManyCallsOnOneStreamEachGetTheirTokensAndOneOk) {
  FakeWorker worker(2);
  GrpcWorkerClientFactory factory(1, absl::ZeroDuration(), GetParam());
  std::shared_ptr<WorkerClient> client = factory.Connect(worker.address());
  const auto [recorders, calls] = StartCalls(*client, 20, [](int i) { return 5 + i % 3; });
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(recorders[i]->WaitDone().ok()) << i;
    EXPECT_EQ(recorders[i]->text(), Tokens(5 + i % 3)) << i;
  }
  std::this_thread::sleep_for(milliseconds(50));
  for (auto& recorder : recorders) EXPECT_EQ(recorder->done(), 1);
}

TEST_P(GrpcWorkerClientLanesTest, WorkerKilledMidStreamEndsEveryOpenCallOnceThenANewStreamServes) {
  FakeWorker worker(10);
  GrpcWorkerClientFactory factory(1, absl::ZeroDuration(), GetParam());
  std::shared_ptr<WorkerClient> client = factory.Connect(worker.address());
  StartedCalls started = StartCalls(*client, 8, [](int) { return 100000; });
  const std::vector<std::shared_ptr<Recorder>> recorders = started.recorders;
  // Weak, so that the calls' release after the failure can be seen.
  const std::vector<std::weak_ptr<GenerateCall>> calls(started.calls.begin(), started.calls.end());
  started.calls.clear();
  for (auto& recorder : recorders) ASSERT_TRUE(recorder->WaitResponses(2));
  worker.Kill();
  for (auto& recorder : recorders) {
    absl::Status status = recorder->WaitDone();
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    EXPECT_NE(status.message().find("worker"), std::string::npos) << status;
  }
  for (auto& call : calls) EXPECT_TRUE(WaitExpired(call));

  worker.Restart();
  // The channel reconnects within its back-off (at most 500 ms); a call before that fails UNAVAILABLE.
  absl::Status status = absl::UnavailableError("not tried");
  const auto deadline = std::chrono::steady_clock::now() + seconds(20);
  auto recorder = std::make_shared<Recorder>();
  while (!status.ok() && std::chrono::steady_clock::now() < deadline) {
    recorder = std::make_shared<Recorder>();
    client->Generate(Request(3), recorder);
    status = recorder->WaitDone();
    if (!status.ok()) std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(recorder->text(), Tokens(3));
  std::this_thread::sleep_for(milliseconds(50));
  for (auto& old : recorders) EXPECT_EQ(old->done(), 1);
}

INSTANTIATE_TEST_SUITE_P(Lanes, GrpcWorkerClientLanesTest, ::testing::Values(0, 1, 2));

// With a delivery lane, a message of one event (one call's token) is handed over by the completion thread
// itself, whatever the call's lane: no hand-off for it.
TEST(GrpcWorkerClientTest, SmallMessagesAreHandedOverByTheCompletionThread) {
  FakeWorker worker(2);
  GrpcWorkerClientFactory factory(1, absl::ZeroDuration(), /*delivery_threads=*/1);
  std::shared_ptr<WorkerClient> client = factory.Connect(worker.address());
  for (int i = 0; i < 2; ++i) {  // calls 1 and 2: one on each lane
    auto recorder = std::make_shared<Recorder>();
    client->Generate(Request(6), recorder);
    EXPECT_TRUE(recorder->WaitDone().ok());
    EXPECT_EQ(recorder->text(), Tokens(6));
    EXPECT_EQ(recorder->threads(), std::set<std::string>{"doze-grpc"}) << "call " << i + 1;
  }
}

// A step's burst (every running call's token in one message) is shared: the calls on the lane get theirs from
// the lane's thread, the others from the completion thread, each in order.
TEST(GrpcWorkerClientTest, BurstsAreSharedWithTheDeliveryLane) {
  FakeWorker worker(20, /*step_clock=*/true);
  GrpcWorkerClientFactory factory(1, absl::ZeroDuration(), /*delivery_threads=*/1);
  std::shared_ptr<WorkerClient> client = factory.Connect(worker.address());
  const auto [recorders, calls] = StartCalls(*client, 20, [](int) { return 5; });
  std::set<std::string> threads;
  for (auto& recorder : recorders) {
    EXPECT_TRUE(recorder->WaitDone().ok());
    EXPECT_EQ(recorder->text(), Tokens(5));
    for (const std::string& thread : recorder->threads()) threads.insert(thread);
  }
  EXPECT_EQ(threads, (std::set<std::string>{"doze-grpc", "doze-deliver"}));
}

TEST(GrpcWorkerClientTest, CallsAndObserversAreFreedOnceDone) {
  FakeWorker worker(2);
  GrpcWorkerClientFactory factory(1);
  std::shared_ptr<WorkerClient> client = factory.Connect(worker.address());

  auto finished = std::make_shared<Recorder>();
  std::weak_ptr<Recorder> finished_observer = finished;
  std::weak_ptr<GenerateCall> finished_call = client->Generate(Request(4), finished);
  EXPECT_TRUE(finished->WaitDone().ok());
  finished.reset();
  EXPECT_TRUE(WaitExpired(finished_call));
  EXPECT_TRUE(WaitExpired(finished_observer));

  auto cancelled = std::make_shared<Recorder>();
  std::weak_ptr<Recorder> cancelled_observer = cancelled;
  std::shared_ptr<GenerateCall> call = client->Generate(Request(100000), cancelled);
  std::weak_ptr<GenerateCall> cancelled_call = call;
  ASSERT_TRUE(cancelled->WaitResponses(1));
  call->Cancel();
  call.reset();
  EXPECT_EQ(cancelled->WaitDone().code(), absl::StatusCode::kCancelled);
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(cancelled->done(), 1);
  cancelled.reset();
  EXPECT_TRUE(WaitExpired(cancelled_call));
  EXPECT_TRUE(WaitExpired(cancelled_observer));
  EXPECT_EQ(Stats(worker.address()).counters().num_aborted(), 1);
}

TEST(GrpcWorkerClientTest, ARefusedCallEndsWithItsStatusAndTheOthersGoOn) {
  FakeWorker worker(2);
  GrpcWorkerClientFactory factory(2);
  std::shared_ptr<WorkerClient> client = factory.Connect(worker.address());
  absl::Status slept = absl::UnknownError("no answer");
  std::mutex mu;
  std::condition_variable cv;
  bool answered = false;
  auto going = std::make_shared<Recorder>();
  client->Generate(Request(50), going);
  ASSERT_TRUE(going->WaitResponses(1));
  client->Sleep(absl::Seconds(5), [&](absl::Status status) {
    std::lock_guard<std::mutex> lock(mu);
    slept = status;
    answered = true;
    cv.notify_all();
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, seconds(10), [&] { return answered; });
  }
  ASSERT_TRUE(slept.ok()) << slept;
  for (int i = 0; i < 2; ++i) {  // on both connections
    auto refused = std::make_shared<Recorder>();
    client->Generate(Request(3), refused);
    EXPECT_EQ(refused->WaitDone().code(), absl::StatusCode::kFailedPrecondition);
  }
  EXPECT_TRUE(going->WaitDone().ok());
  EXPECT_EQ(going->text(), Tokens(50));
}

// The stand-in's timer thread writes the tokens of a stream's calls that come due at one wake-up in one
// message, as a worker writes one engine step's outputs.
TEST(FakeWorkerStreamTest, OneMessageCarriesTheEventsOfSeveralCalls) {
  FakeWorker worker(5);
  auto stub = v1::Worker::NewStub(grpc::CreateChannel(worker.address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  auto stream = stub->GenerateStream(&context);
  v1::GenerateStreamRequest starts;
  constexpr int kCalls = 20;
  constexpr int kTokens = 10;
  for (int i = 0; i < kCalls; ++i) {
    v1::StreamCommand* command = starts.add_commands();
    command->set_call_id(i + 1);
    *command->mutable_start() = Request(kTokens);
  }
  ASSERT_TRUE(stream->Write(starts));
  int messages = 0;
  int events = 0;
  int ended = 0;
  v1::GenerateStreamResponse response;
  while (ended < kCalls && stream->Read(&response)) {
    ++messages;
    events += response.events_size();
    for (const v1::CallEvent& event : response.events()) {
      if (event.has_status()) {
        EXPECT_EQ(event.status().code(), 0) << event.status().message();
        ++ended;
      }
    }
  }
  EXPECT_EQ(ended, kCalls);
  EXPECT_EQ(events, kCalls * kTokens);
  EXPECT_LE(messages * 4, events) << messages << " messages for " << events << " events";
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace doze::gateway

// The worker supervisor's state machine and the default idle stop, with a fake spawner, a fake worker client
// and a fake clock: no process is started and no time is waited out.
#include "gateway/workers/worker_supervisor.h"

#include <signal.h>

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "gateway/dispatch/dispatcher.h"
#include "gateway/functions/function_table.h"
#include "gateway/ops/function_metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace doze::gateway {
namespace {

using ::testing::HasSubstr;

class FakeChild : public ChildProcess {
 public:
  pid_t pid() const override { return 4242; }
  void Signal(int signal) override {
    absl::MutexLock lock(&mu_);
    signals_.push_back(signal);
  }
  std::vector<int> signals() const {
    absl::MutexLock lock(&mu_);
    return signals_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<int> signals_;
};

class FakeSpawner : public Spawner {
 public:
  absl::StatusOr<std::shared_ptr<ChildProcess>> Spawn(const SpawnSpec&,
                                                      std::function<void(std::string)> on_exit) override {
    absl::MutexLock lock(&mu_);
    ++spawns_;
    if (!fail_with_.empty()) return absl::FailedPreconditionError(fail_with_);
    child_ = std::make_shared<FakeChild>();
    on_exit_ = std::move(on_exit);
    return child_;
  }
  // Makes the last child exit with `reason`.
  void Exit(const std::string& reason) {
    std::function<void(std::string)> on_exit;
    {
      absl::MutexLock lock(&mu_);
      on_exit = std::move(on_exit_);
    }
    on_exit(reason);
  }
  absl::Mutex mu_;
  int spawns_ = 0;
  std::string fail_with_;
  std::shared_ptr<FakeChild> child_;
  std::function<void(std::string)> on_exit_;
};

// A call that has already ended; it holds its observer, as a real call does while it runs.
class AnsweredCall : public GenerateCall {
 public:
  explicit AnsweredCall(std::shared_ptr<GenerateObserver> observer) : observer_(std::move(observer)) {}
  void Cancel() override {}

 private:
  std::shared_ptr<GenerateObserver> observer_;
};

class FakeClient : public WorkerClient, public WorkerClientFactory {
 public:
  void CheckHealth(absl::Duration, std::function<void(bool)> done) override {
    health_checks.fetch_add(1);
    done(serving.load());
  }
  // With answer_at_once, the call ends (its last response, then OnDone) before Generate returns, as a fast
  // worker's answer can reach the gateway's gRPC thread before the dispatching thread runs on.
  // With calls_to_break > 0, the call ends at once with UNAVAILABLE, as a call on a stream to a dead worker
  // does.
  std::shared_ptr<GenerateCall> Generate(const v1::GenerateRequest&,
                                         std::shared_ptr<GenerateObserver> observer) override {
    generates.fetch_add(1);
    if (calls_to_break.load() > 0) {
      calls_to_break.fetch_sub(1);
      auto call = std::make_shared<AnsweredCall>(observer);
      observer->OnDone(absl::UnavailableError("the stream to the worker ended before the call did"));
      return call;
    }
    if (!answer_at_once) return nullptr;
    auto call = std::make_shared<AnsweredCall>(observer);
    v1::GenerateResponse last;
    last.set_finish_reason(v1::FINISH_REASON_STOP);
    observer->OnResponse(last, std::chrono::steady_clock::now());
    observer->OnDone(absl::OkStatus());
    return call;
  }
  void Stats(absl::Duration, std::function<void(absl::StatusOr<v1::StatsResponse>)> done) override {
    done(v1::StatsResponse());
  }
  void Sleep(absl::Duration, std::function<void(absl::Status)> done) override { done(absl::OkStatus()); }
  void Wake(absl::Duration, std::function<void(absl::Status)> done) override { done(absl::OkStatus()); }
  void Drain(absl::Duration, std::function<void(absl::Status)> done) override { done(absl::OkStatus()); }
  std::shared_ptr<WorkerClient> Connect(const std::string&) override { return self.lock(); }
  std::atomic<bool> serving{true};
  std::atomic<bool> answer_at_once{false};
  std::atomic<int> calls_to_break{0};
  std::atomic<int> generates{0};
  std::atomic<int> health_checks{0};
  std::weak_ptr<FakeClient> self;
};

// Hands out its clients in turn, one a worker start.
class ClientSequence : public WorkerClientFactory {
 public:
  explicit ClientSequence(std::vector<std::shared_ptr<FakeClient>> clients) : clients_(std::move(clients)) {}
  std::shared_ptr<WorkerClient> Connect(const std::string&) override { return clients_.at(next_++); }

 private:
  std::vector<std::shared_ptr<FakeClient>> clients_;
  size_t next_ = 0;
};

// Waits (up to 5 s) for `done`.
template <typename Done>
bool Await(Done done) {
  for (int i = 0; i < 500 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return done();
}

class WorkerSupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = std::make_shared<FakeClient>();
    client_->self = client_;
    SupervisorOptions options;
    options.function = "copy_polish";
    options.backoff_initial = absl::Seconds(1);
    options.backoff_max = absl::Seconds(4);
    options.health_interval = absl::Milliseconds(1);
    supervisor_ =
        std::make_shared<WorkerSupervisor>(options, &spawner_, client_.get(), &clock_, io_.get_executor());
    supervisor_->AddObserver([this](const WorkerTransition& t) {
      absl::MutexLock lock(&mu_);
      transitions_.push_back(absl::StrCat(WorkerStateName(t.from), "->", WorkerStateName(t.to)));
    });
    thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    work_.reset();
    io_.stop();
    thread_.join();
  }

  // Waits (up to 5 s of real time) for the supervisor to reach `state`.
  bool AwaitState(WorkerState state) {
    return Await([&] { return supervisor_->state() == state; });
  }

  std::vector<std::string> transitions() {
    absl::MutexLock lock(&mu_);
    return transitions_;
  }

  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{
      io_.get_executor()};
  std::thread thread_;
  FakeClock clock_;
  FakeSpawner spawner_;
  std::shared_ptr<FakeClient> client_;
  std::shared_ptr<WorkerSupervisor> supervisor_;
  absl::Mutex mu_;
  std::vector<std::string> transitions_;
};

TEST_F(WorkerSupervisorTest, StartWaitsForHealthThenIsReady) {
  client_->serving = false;
  supervisor_->Start("test");
  ASSERT_TRUE(AwaitState(WorkerState::kStarting));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(supervisor_->state(), WorkerState::kStarting);
  EXPECT_EQ(supervisor_->ready_client(), nullptr);
  client_->serving = true;
  ASSERT_TRUE(AwaitState(WorkerState::kReady));
  EXPECT_NE(supervisor_->ready_client(), nullptr);
  WorkerSnapshot snapshot = supervisor_->snapshot();
  EXPECT_EQ(snapshot.pid, 4242);
  EXPECT_EQ(snapshot.cold_starts, 1);
  EXPECT_EQ(transitions(), (std::vector<std::string>{"stopped->starting", "starting->ready"}));
  supervisor_->Start("again");
  EXPECT_EQ(spawner_.spawns_, 1);
}

TEST_F(WorkerSupervisorTest, FailedStartsBackOffDoubling) {
  spawner_.fail_with_ = "cannot start doze-worker: No such file";
  absl::Time start = clock_.Now();
  supervisor_->Start("first");
  ASSERT_TRUE(AwaitState(WorkerState::kFailed));
  WorkerSnapshot first = supervisor_->snapshot();
  EXPECT_THAT(first.last_error, HasSubstr("No such file"));
  EXPECT_EQ(first.next_start_allowed, start + absl::Seconds(1));
  supervisor_->Start("during back-off");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(spawner_.spawns_, 1);
  clock_.Advance(absl::Seconds(1));
  supervisor_->Start("after back-off");
  for (int i = 0; i < 200 && supervisor_->snapshot().next_start_allowed == first.next_start_allowed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(supervisor_->snapshot().next_start_allowed, start + absl::Seconds(1) + absl::Seconds(2));
}

TEST_F(WorkerSupervisorTest, CrashIsFailedWithTheReasonAndDemandRestartsAfterBackOff) {
  supervisor_->Start("test");
  ASSERT_TRUE(AwaitState(WorkerState::kReady));
  spawner_.Exit("killed by signal 9 (Killed)");
  ASSERT_TRUE(AwaitState(WorkerState::kFailed));
  EXPECT_THAT(supervisor_->snapshot().last_error, HasSubstr("worker died: killed by signal 9"));
  EXPECT_FALSE(supervisor_->snapshot().pid.has_value());
  supervisor_->EnsureReady("a request is waiting");
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(AwaitState(WorkerState::kReady));
  EXPECT_EQ(spawner_.spawns_, 2);
  EXPECT_EQ(supervisor_->snapshot().cold_starts, 2);
}

TEST_F(WorkerSupervisorTest, StopCancelsAStartWaitingOutTheBackOff) {
  spawner_.fail_with_ = "cannot start doze-worker: No such file";
  supervisor_->Start("first");
  ASSERT_TRUE(AwaitState(WorkerState::kFailed));
  spawner_.fail_with_ = "";
  supervisor_->Start("during back-off");  // Scheduled for when the 1 s back-off ends.
  supervisor_->Stop("operator stop");
  clock_.Advance(absl::Seconds(1));  // The back-off is over when the scheduled start would run.
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  EXPECT_EQ(spawner_.spawns_, 1);
  EXPECT_EQ(supervisor_->state(), WorkerState::kFailed);
  supervisor_->Start("after the stop");
  ASSERT_TRUE(AwaitState(WorkerState::kReady));
  EXPECT_EQ(spawner_.spawns_, 2);
}

TEST_F(WorkerSupervisorTest, StopSendsSigtermAndEndsStopped) {
  supervisor_->Start("test");
  ASSERT_TRUE(AwaitState(WorkerState::kReady));
  supervisor_->Stop("operator");
  EXPECT_EQ(supervisor_->state(), WorkerState::kStopping);
  EXPECT_EQ(spawner_.child_->signals(), std::vector<int>{SIGTERM});
  spawner_.Exit("exited with status 0");
  ASSERT_TRUE(AwaitState(WorkerState::kStopped));
  EXPECT_TRUE(supervisor_->snapshot().last_error.empty());
}

TEST_F(WorkerSupervisorTest, SleepAndWake) {
  supervisor_->Start("test");
  ASSERT_TRUE(AwaitState(WorkerState::kReady));
  supervisor_->Sleep("quiet hours");
  ASSERT_TRUE(AwaitState(WorkerState::kSleeping));
  EXPECT_EQ(supervisor_->ready_client(), nullptr);
  supervisor_->EnsureReady("request");
  ASSERT_TRUE(AwaitState(WorkerState::kReady));
  EXPECT_EQ(spawner_.spawns_, 1);
}

// A sink that counts what reached it.
class CountingSink : public GenerationSink {
 public:
  void OnResponse(const v1::GenerateResponse&) override { ++responses; }
  void OnError(const absl::Status&) override { ++errors; }
  std::atomic<int> responses{0}, errors{0};
};

// A call that ends before the dispatcher has set its cancel hook must not leave the request (and with it the
// client's HTTP session) alive: the hook would hold the call, the call its observer, the observer the
// request.
TEST_F(WorkerSupervisorTest, RequestAnsweredBeforeItsCancelHookIsSetIsFreed) {
  client_->answer_at_once = true;
  auto metrics = std::make_shared<FunctionMetrics>();
  DispatcherOptions options;
  options.function = "copy_polish";
  auto dispatcher = std::make_shared<Dispatcher>(options, supervisor_, metrics, &clock_, io_.get_executor());
  dispatcher->Init();
  supervisor_->Start("test");
  ASSERT_TRUE(AwaitState(WorkerState::kReady));
  auto sink = std::make_shared<CountingSink>();
  std::weak_ptr<PendingRequest> weak;
  {
    auto request = std::make_shared<PendingRequest>("copy_polish", v1::GenerateRequest(), sink, absl::Now());
    weak = request;
    ASSERT_TRUE(dispatcher->Submit(request).ok());
  }
  for (int i = 0; i < 200 && !weak.expired(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(sink->responses.load(), 1);
  EXPECT_EQ(sink->errors.load(), 0);
  EXPECT_TRUE(weak.expired()) << "the request outlived its call";
}

// A worker that dies as a request comes (its calls break at once, its health checks fail) and the one that
// replaces it (answers at once), under their own supervisor and a dispatcher, with one request submitted once
// the first is ready.
class DeadWorkerTest : public WorkerSupervisorTest {
 protected:
  void StartAndSubmit(absl::Duration unresponsive_timeout) {
    next_->answer_at_once = true;
    SupervisorOptions supervisor_options;
    supervisor_options.function = "copy_polish";
    supervisor_options.health_interval = absl::Milliseconds(1);
    supervisor_ = std::make_shared<WorkerSupervisor>(supervisor_options, &spawner_, &clients_, &clock_,
                                                     io_.get_executor());
    DispatcherOptions options;
    options.function = "copy_polish";
    options.suspect_recheck = absl::Milliseconds(5);
    options.unresponsive_timeout = unresponsive_timeout;
    dispatcher_ = std::make_shared<Dispatcher>(options, supervisor_, metrics_, &clock_, io_.get_executor());
    dispatcher_->Init();
    supervisor_->Start("test");
    ASSERT_TRUE(AwaitState(WorkerState::kReady));
    dead_->serving = false;
    dead_->calls_to_break = 1000;
    ASSERT_TRUE(dispatcher_
                    ->Submit(std::make_shared<PendingRequest>("copy_polish", v1::GenerateRequest(), sink_,
                                                              absl::Now()))
                    .ok());
  }

  // The dead worker's process exits; after the back-off its successor answers the request, and only it.
  void ExpectAnsweredByTheNextWorker() {
    spawner_.Exit("killed by signal 9 (Killed)");
    clock_.Advance(absl::Seconds(1));  // the back-off
    ASSERT_TRUE(Await([&] { return sink_->responses.load() == 1; }));
    EXPECT_EQ(sink_->errors.load(), 0);
    EXPECT_EQ(next_->generates.load(), 1);
    EXPECT_EQ(dead_->generates.load(), 1);
    EXPECT_EQ(dispatcher_->in_flight(), 0);
  }

  std::shared_ptr<FakeClient> dead_ = std::make_shared<FakeClient>();
  std::shared_ptr<FakeClient> next_ = std::make_shared<FakeClient>();
  ClientSequence clients_{{dead_, next_}};
  std::shared_ptr<FunctionMetrics> metrics_ = std::make_shared<FunctionMetrics>();
  std::shared_ptr<Dispatcher> dispatcher_;
  std::shared_ptr<CountingSink> sink_ = std::make_shared<CountingSink>();
};

// A killed worker's calls break before the supervisor has seen its exit, while it still counts as ready: the
// request that saw no output waits for the next worker instead of breaking again on the dead one (and being
// answered 503 after its one retry).
TEST_F(DeadWorkerTest, BrokenCallWaitsForTheNextWorkerWhileTheDeadOneCountsAsReady) {
  ASSERT_NO_FATAL_FAILURE(StartAndSubmit(absl::Seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // many health checks of the dead worker
  EXPECT_EQ(dead_->generates.load(), 1);
  EXPECT_EQ(sink_->errors.load(), 0);
  EXPECT_EQ(dispatcher_->queue_depth(), 1);
  ExpectAnsweredByTheNextWorker();
}

// A worker whose calls broke and that keeps failing its health checks while a request waits is killed after
// unresponsive_timeout, as a failure with back-off, and the request goes to its successor.
TEST_F(DeadWorkerTest, WorkerThatKeepsFailingItsHealthChecksIsKilledAndReplaced) {
  ASSERT_NO_FATAL_FAILURE(StartAndSubmit(absl::Seconds(10)));
  std::shared_ptr<FakeChild> first_child = spawner_.child_;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // checks fail, but not yet for 10 s
  EXPECT_EQ(supervisor_->state(), WorkerState::kReady);
  EXPECT_TRUE(first_child->signals().empty());
  clock_.Advance(absl::Seconds(10));
  ASSERT_TRUE(AwaitState(WorkerState::kFailed));
  EXPECT_THAT(supervisor_->snapshot().last_error, HasSubstr("worker stopped answering"));
  EXPECT_EQ(first_child->signals(), std::vector<int>{SIGKILL});
  ExpectAnsweredByTheNextWorker();
}

// A call that breaks on a worker that is still up (its health check answers SERVING) is retried on it at
// once.
TEST_F(WorkerSupervisorTest, BrokenCallIsRetriedOnAWorkerThatAnswersItsHealthCheck) {
  client_->answer_at_once = true;
  client_->calls_to_break = 1;
  auto metrics = std::make_shared<FunctionMetrics>();
  DispatcherOptions options;
  options.function = "copy_polish";
  options.suspect_recheck = absl::Seconds(30);  // a held queue would not be released within the test
  auto dispatcher = std::make_shared<Dispatcher>(options, supervisor_, metrics, &clock_, io_.get_executor());
  dispatcher->Init();
  supervisor_->Start("test");
  ASSERT_TRUE(AwaitState(WorkerState::kReady));
  auto sink = std::make_shared<CountingSink>();
  ASSERT_TRUE(
      dispatcher
          ->Submit(std::make_shared<PendingRequest>("copy_polish", v1::GenerateRequest(), sink, absl::Now()))
          .ok());
  ASSERT_TRUE(Await([&] { return sink->responses.load() == 1; }));
  EXPECT_EQ(sink->errors.load(), 0);
  EXPECT_EQ(client_->generates.load(), 2);
}

// A worker frozen with a call in flight (the call never ends, its health checks stop answering) is killed
// once its checks have failed for unresponsive_timeout, as a failure with back-off; while they answer, a long
// call is left alone.
TEST_F(WorkerSupervisorTest, WorkerFrozenWithACallInFlightIsKilled) {
  auto metrics = std::make_shared<FunctionMetrics>();
  DispatcherOptions options;
  options.function = "copy_polish";
  options.liveness_check = absl::Milliseconds(5);
  options.unresponsive_timeout = absl::Seconds(10);
  auto dispatcher = std::make_shared<Dispatcher>(options, supervisor_, metrics, &clock_, io_.get_executor());
  dispatcher->Init();
  supervisor_->Start("test");
  ASSERT_TRUE(AwaitState(WorkerState::kReady));
  std::shared_ptr<FakeChild> child = spawner_.child_;
  auto sink = std::make_shared<CountingSink>();
  ASSERT_TRUE(
      dispatcher
          ->Submit(std::make_shared<PendingRequest>("copy_polish", v1::GenerateRequest(), sink, absl::Now()))
          .ok());
  ASSERT_EQ(dispatcher->in_flight(), 1);  // the call stays open
  const int checks_before = client_->health_checks.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_GT(client_->health_checks.load(), checks_before + 3);  // asked while the call runs
  clock_.Advance(absl::Seconds(30));                            // answering: no limit to a call's length
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(supervisor_->state(), WorkerState::kReady);
  client_->serving = false;  // frozen
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(supervisor_->state(), WorkerState::kReady);  // failing, but not yet for 10 s
  EXPECT_TRUE(child->signals().empty());
  clock_.Advance(absl::Seconds(10));
  ASSERT_TRUE(AwaitState(WorkerState::kFailed));
  EXPECT_THAT(supervisor_->snapshot().last_error,
              HasSubstr("worker stopped answering: its health checks failed with calls in flight"));
  EXPECT_EQ(child->signals(), std::vector<int>{SIGKILL});
}

}  // namespace
}  // namespace doze::gateway

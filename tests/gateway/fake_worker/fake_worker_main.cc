// doze-fake-worker: a stand-in for doze-worker in the gateway's tests and benchmark. It takes doze-worker's
// flags, serves doze.v1.Worker and grpc.health.v1 on --listen, and answers Generate with max_tokens tokens
// ("t0 t1 ..."), one every DOZE_FAKE_TOKEN_DELAY_MS milliseconds (default 5). DOZE_FAKE_FAIL_START=1 makes it
// exit at once with an error, as a worker that cannot load its model does. DOZE_FAKE_CPUS=FIRST-LAST pins it
// to those cores (the benchmark keeps it off the gateway's). DOZE_FAKE_STAMP_TOKENS=1 makes token i's text
// "t<i>@<ns> " instead of "t<i> ", <ns> being the wall-clock time (CLOCK_REALTIME, nanoseconds since the
// epoch) at which the token is handed to gRPC: the benchmark's load generator, on the same host, subtracts it
// from the time the token's SSE chunk arrives, for the latency the gateway adds to each streamed message.
//
// Like doze-worker it uses gRPC's callback API: a call is answered on the gRPC thread that received it (no
// delay) or from one timer thread (the stand-in for the engine thread), so the benchmark's "added" time holds
// as few of the fake's own thread hand-offs as the real worker has.
#include <sched.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "proto/worker.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value == nullptr ? fallback : std::atoi(value);
}

// The wall-clock time, nanoseconds since the epoch (shared by the processes of one host).
int64_t RealtimeNanos() {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Runs callbacks at their times on one thread.
class TimerThread {
 public:
  TimerThread() : thread_([this] { Loop(); }) {}
  ~TimerThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  // Runs `callback` on the timer thread at `when`.
  void At(Clock::time_point when, std::function<void()> callback) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      timers_.push(Timer{when, sequence_++, std::move(callback)});
    }
    wake_.notify_one();
  }

 private:
  struct Timer {
    Clock::time_point when;
    uint64_t sequence;
    std::function<void()> callback;
    bool operator>(const Timer& other) const {
      return when != other.when ? when > other.when : sequence > other.sequence;
    }
  };

  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      if (timers_.empty()) {
        wake_.wait(lock);
        continue;
      }
      if (Clock::now() < timers_.top().when) {
        wake_.wait_until(lock, timers_.top().when);
        continue;
      }
      std::function<void()> callback = std::move(const_cast<Timer&>(timers_.top()).callback);
      timers_.pop();
      lock.unlock();
      callback();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable wake_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  uint64_t sequence_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

// What the calls share: the counters Stats reports, the sleeping flag and the timer thread.
struct FakeState {
  std::string function;
  int delay_ms = 5;
  bool stamp_tokens = false;  // DOZE_FAKE_STAMP_TOKENS: each token's text carries its send time.
  std::atomic<bool> sleeping{false};
  std::atomic<int> num_running{0};
  std::atomic<int64_t> num_requests{0};
  std::atomic<int64_t> generated_tokens{0};
  std::atomic<int64_t> num_aborted{0};
  TimerThread timers;
};

// One Generate call: writes max_tokens responses, the next one when the previous write is done and the token
// delay has passed. Deletes itself in OnDone.
class FakeGenerate : public grpc::ServerWriteReactor<doze::v1::GenerateResponse> {
 public:
  FakeGenerate(FakeState* state, const doze::v1::GenerateRequest& request) : state_(state) {
    if (state_->sleeping.load()) {
      finished_ = true;
      Finish(grpc::Status(grpc::FAILED_PRECONDITION, "sleeping"));
      return;
    }
    state_->num_requests.fetch_add(1);
    state_->num_running.fetch_add(1);
    max_tokens_ = request.sampling().has_max_tokens() ? request.sampling().max_tokens() : 16;
    prompt_tokens_ = request.token_ids().ids_size();
    if (max_tokens_ <= 0) {
      End(grpc::Status::OK);
      return;
    }
    ScheduleNext();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return End(grpc::Status(grpc::CANCELLED, "cancelled by the client"), /*aborted=*/true);
    ScheduleNext();
  }

  void OnCancel() override { cancelled_.store(true); }

  void OnDone() override { delete this; }

 private:
  // Writes the next token now (no delay) or after the delay on the timer thread.
  void ScheduleNext() {
    if (state_->delay_ms <= 0) return WriteNext();
    state_->timers.At(Clock::now() + std::chrono::milliseconds(state_->delay_ms), [this] { WriteNext(); });
  }

  void WriteNext() {
    if (cancelled_.load()) return End(grpc::Status(grpc::CANCELLED, "cancelled by the client"), true);
    int index = next_token_++;
    response_.Clear();
    if (!state_->stamp_tokens) response_.set_text_delta(absl::StrCat("t", index, " "));
    response_.add_token_ids(1000 + index);
    state_->generated_tokens.fetch_add(1);
    if (index == 0) first_token_ms_ = MillisSince(start_);
    if (index + 1 < max_tokens_) {
      Stamp(index);
      return StartWrite(&response_);
    }
    response_.set_finish_reason(doze::v1::FINISH_REASON_LENGTH);
    response_.mutable_usage()->set_prompt_tokens(prompt_tokens_);
    response_.mutable_usage()->set_completion_tokens(max_tokens_);
    response_.mutable_timings()->set_total_ms(MillisSince(start_));
    response_.mutable_timings()->set_time_to_first_token_ms(first_token_ms_);
    state_->num_running.fetch_sub(1);
    finished_ = true;
    Stamp(index);
    StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
  }

  // With DOZE_FAKE_STAMP_TOKENS, sets token `index`'s text to "t<index>@<now, ns since the epoch> ", just
  // before the write.
  void Stamp(int index) {
    if (state_->stamp_tokens) response_.set_text_delta(absl::StrCat("t", index, "@", RealtimeNanos(), " "));
  }

  // Finishes the call early with `status`.
  void End(const grpc::Status& status, bool aborted = false) {
    if (finished_) return;
    finished_ = true;
    state_->num_running.fetch_sub(1);
    if (aborted) state_->num_aborted.fetch_add(1);
    Finish(status);
  }

  FakeState* const state_;
  const Clock::time_point start_ = Clock::now();
  std::atomic<bool> cancelled_{false};
  bool finished_ = false;  // Touched by one thread at a time: the write chain is sequential.
  int max_tokens_ = 0;
  int prompt_tokens_ = 0;
  int next_token_ = 0;
  double first_token_ms_ = 0;
  doze::v1::GenerateResponse response_;
};

class FakeWorker final : public doze::v1::Worker::CallbackService {
 public:
  explicit FakeWorker(FakeState* state) : state_(state) {}

  grpc::ServerWriteReactor<doze::v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext*, const doze::v1::GenerateRequest* request) override {
    return new FakeGenerate(state_, *request);
  }

  grpc::ServerUnaryReactor* Stats(grpc::CallbackServerContext* context, const doze::v1::StatsRequest*,
                                  doze::v1::StatsResponse* response) override {
    response->set_function(state_->function);
    response->set_backend("fake");
    response->set_state(state_->sleeping.load() ? doze::v1::WORKER_STATE_SLEEPING
                                                : doze::v1::WORKER_STATE_SERVING);
    response->mutable_counters()->set_num_running(state_->num_running.load());
    response->mutable_counters()->set_num_requests(state_->num_requests.load());
    response->mutable_counters()->set_generated_tokens(state_->generated_tokens.load());
    // The fake's aborted calls, reported where a real worker reports preemptions (tests read it).
    response->mutable_counters()->set_num_preemptions(state_->num_aborted.load());
    return Done(context);
  }

  grpc::ServerUnaryReactor* Sleep(grpc::CallbackServerContext* context, const doze::v1::SleepRequest*,
                                  doze::v1::SleepResponse*) override {
    state_->sleeping.store(true);
    return Done(context);
  }

  grpc::ServerUnaryReactor* Wake(grpc::CallbackServerContext* context, const doze::v1::WakeRequest*,
                                 doze::v1::WakeResponse*) override {
    state_->sleeping.store(false);
    return Done(context);
  }

  grpc::ServerUnaryReactor* Drain(grpc::CallbackServerContext* context, const doze::v1::DrainRequest*,
                                  doze::v1::DrainResponse*) override {
    return Done(context);
  }

 private:
  static grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  FakeState* const state_;
};

// Pins the process to the cores "FIRST-LAST" of DOZE_FAKE_CPUS, when set.
void PinFromEnvironment() {
  const char* cpus = std::getenv("DOZE_FAKE_CPUS");
  if (cpus == nullptr) return;
  int first = 0, last = 0;
  if (std::sscanf(cpus, "%d-%d", &first, &last) != 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int cpu = first; cpu <= last; ++cpu) CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof(set), &set);
}

}  // namespace

int main(int argc, char** argv) {
  PinFromEnvironment();
  // As in doze-gateway: no lock-order graph on every Mutex acquisition (gRPC's included).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::string function, listen;
  for (int i = 1; i + 1 < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--function")
      function = argv[++i];
    else if (flag == "--listen")
      listen = argv[++i];
  }
  if (EnvInt("DOZE_FAKE_FAIL_START", 0) != 0) {
    std::cerr << "error: cannot load the model (DOZE_FAKE_FAIL_START)" << std::endl;
    return 3;
  }
  if (function.empty() || listen.empty()) {
    std::cerr << "usage: doze-fake-worker --function NAME --listen ADDRESS" << std::endl;
    return 2;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(EnvInt("DOZE_FAKE_START_DELAY_MS", 0)));
  grpc::EnableDefaultHealthCheckService(true);
  FakeState state;
  state.function = function;
  state.delay_ms = EnvInt("DOZE_FAKE_TOKEN_DELAY_MS", 5);
  state.stamp_tokens = EnvInt("DOZE_FAKE_STAMP_TOKENS", 0) != 0;
  FakeWorker service(&state);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    std::cerr << "error: cannot listen on " << listen << std::endl;
    return 1;
  }
  std::cout << "{\"event\":\"ready\",\"function\":\"" << function << "\"}" << std::endl;
  server->Wait();
  return 0;
}

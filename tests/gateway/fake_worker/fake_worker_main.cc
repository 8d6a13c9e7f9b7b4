// doze-fake-worker: a stand-in for doze-worker in the gateway's tests and benchmark. It takes doze-worker's
// flags, serves doze.v1.Worker and grpc.health.v1 on --listen, and answers Generate with max_tokens tokens
// ("t0 t1 ..."), one every DOZE_FAKE_TOKEN_DELAY_MS milliseconds (default 5), and GenerateStream alike (the
// tokens of a stream's calls that come due at one timer wake-up leave in one message). DOZE_FAKE_FAIL_START=1
// makes it exit at once with an error, as a worker that cannot load its model does. DOZE_FAKE_CPUS=LIST (a
// kernel CPU list) pins it to those CPUs (the benchmark keeps it off the gateway's). DOZE_FAKE_STAMP_TOKENS=1
// makes token i's text "t<i>@<ns> " instead of "t<i> ", <ns> being the wall-clock time (CLOCK_REALTIME,
// nanoseconds since the epoch) at which the token is handed to gRPC: the benchmark's load generator, on the
// same host, subtracts it from the time the token's SSE chunk arrives, for the latency the gateway adds to
// each streamed message. DOZE_FAKE_STEP_CLOCK=1 puts every call's tokens on the ticks of one clock (one a
// token delay), as an engine's steps do, so that calls started at different times still get their tokens
// together. SIGUSR1 makes it hang up: its server shuts down at once (every stream breaks,
// nothing answers, health checks included) and the process exits with status 1 only DOZE_FAKE_HANGUP_EXIT_MS
// (default 1500) later, as a worker whose process outlives its server for a while does (a crash that takes
// time to unwind).
//
// Like doze-worker it uses gRPC's callback API: a call is answered on the gRPC thread that received it (no
// delay) or from one timer thread (the stand-in for the engine thread), so the benchmark's "added" time holds
// as few of the fake's own thread hand-offs as the real worker has.
#include <sched.h>
#include <signal.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "proto/worker.grpc.pb.h"
#include "worker/common/cpu_list.h"

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

  // From a callback: runs `callback` once every callback due at this wake-up has run (a stream writes all
  // its tokens of the wake-up in one message, as a worker writes a step's outputs).
  void AfterThisWakeUp(std::function<void()> callback) { after_wake_up_.push_back(std::move(callback)); }

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
      const Clock::time_point now = Clock::now();
      if (now < timers_.top().when) {
        wake_.wait_until(lock, timers_.top().when);
        continue;
      }
      std::vector<std::function<void()>> due;
      while (!timers_.empty() && timers_.top().when <= now) {
        due.push_back(std::move(const_cast<Timer&>(timers_.top()).callback));
        timers_.pop();
      }
      lock.unlock();
      for (std::function<void()>& callback : due) callback();
      for (std::function<void()>& callback : std::exchange(after_wake_up_, {})) callback();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable wake_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  uint64_t sequence_ = 0;
  bool stopping_ = false;
  std::vector<std::function<void()>> after_wake_up_;  // timer thread only
  std::thread thread_;
};

// What the calls share: the counters Stats reports, the sleeping flag and the timer thread.
struct FakeState {
  std::string function;
  int delay_ms = 5;
  bool stamp_tokens = false;  // DOZE_FAKE_STAMP_TOKENS: each token's text carries its send time.
  bool step_clock = false;    // DOZE_FAKE_STEP_CLOCK: tokens come due on the ticks of one clock.
  const Clock::time_point epoch = Clock::now();
  std::atomic<bool> sleeping{false};
  std::atomic<int> num_running{0};
  std::atomic<int64_t> num_requests{0};
  std::atomic<int64_t> generated_tokens{0};
  std::atomic<int64_t> num_aborted{0};
  TimerThread timers;
};

// When a call's next token is due: a token delay from now, or with the step clock the clock's next tick at
// least half a delay away (the tick after the one that wrote its last token; a new call's first at 0.5 to 1.5
// delays), so that every running call's token comes due at the same tick, as an engine's step gives each
// running sequence its token together, however the calls' starts are spread.
Clock::time_point NextTokenDue(const FakeState& state) {
  const Clock::duration delay = std::chrono::milliseconds(state.delay_ms);
  const Clock::time_point now = Clock::now();
  if (!state.step_clock) return now + delay;
  const auto ticks = (now - state.epoch + delay / 2) / delay + 1;
  return state.epoch + ticks * delay;
}

// Most tokens a request asks for (16 when unset, the engine's default).
int MaxTokens(const doze::v1::GenerateRequest& request) {
  return request.sampling().has_max_tokens() ? request.sampling().max_tokens() : 16;
}

// Token `index` of a call: its text "t<index> " (with DOZE_FAKE_STAMP_TOKENS "t<index>@<now, ns since the
// epoch>
// ": call it just before the write) and id; the last also carries the finish, usage and timings.
void FillToken(const FakeState& state, int index, bool last, int prompt_tokens, int max_tokens,
               Clock::time_point start, double first_token_ms, doze::v1::GenerateResponse* response) {
  response->set_text_delta(state.stamp_tokens ? absl::StrCat("t", index, "@", RealtimeNanos(), " ")
                                              : absl::StrCat("t", index, " "));
  response->add_token_ids(1000 + index);
  if (!last) return;
  response->set_finish_reason(doze::v1::FINISH_REASON_LENGTH);
  response->mutable_usage()->set_prompt_tokens(prompt_tokens);
  response->mutable_usage()->set_completion_tokens(max_tokens);
  response->mutable_timings()->set_total_ms(MillisSince(start));
  response->mutable_timings()->set_time_to_first_token_ms(first_token_ms);
}

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
    max_tokens_ = MaxTokens(request);
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
    state_->timers.At(NextTokenDue(*state_), [this] { WriteNext(); });
  }

  void WriteNext() {
    if (cancelled_.load()) return End(grpc::Status(grpc::CANCELLED, "cancelled by the client"), true);
    int index = next_token_++;
    state_->generated_tokens.fetch_add(1);
    if (index == 0) first_token_ms_ = MillisSince(start_);
    const bool last = index + 1 >= max_tokens_;
    if (last) {
      state_->num_running.fetch_sub(1);
      finished_ = true;
    }
    response_.Clear();
    FillToken(*state_, index, last, prompt_tokens_, max_tokens_, start_, first_token_ms_, &response_);
    if (!last) return StartWrite(&response_);
    StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
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

// One GenerateStream: the calls started on it get the same tokens, at the same pace, as FakeGenerate's (a
// call's next token is due a token delay after the write that carried the previous one), but the tokens due
// at one timer wake-up leave in one message for the whole stream, and a token is stamped as that message is
// handed to gRPC. Deletes itself once gRPC is done with it and no timer holds it.
class FakeGenerateStream
    : public grpc::ServerBidiReactor<doze::v1::GenerateStreamRequest, doze::v1::GenerateStreamResponse> {
 public:
  explicit FakeGenerateStream(FakeState* state) : state_(state) { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!ok) {
        // Half-closed (or broken): the calls still open are cancelled.
        reads_done_ = true;
        AbortAllLocked();
      } else {
        for (const doze::v1::StreamCommand& command : request_.commands()) {
          if (command.has_start()) StartLocked(command.call_id(), command.start());
          if (command.has_cancel()) AbortLocked(command.call_id());
        }
      }
    }
    Flush();
    if (ok) StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (!ok) {
        broken_ = true;
        AbortAllLocked();
      }
      for (uint64_t id : std::exchange(in_flight_, {})) {
        if (ok) ScheduleNextLocked(id);
      }
    }
    Flush();
  }

  void OnCancel() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      broken_ = true;
      AbortAllLocked();
    }
    Flush();
  }

  void OnDone() override { Unref(); }

 private:
  struct Call {
    int max_tokens = 0;
    int prompt_tokens = 0;
    int next_token = 0;
    double first_token_ms = 0;
    Clock::time_point start = Clock::now();
  };
  // What waits for the next write: a token of a call, its final status, or both.
  struct Event {
    uint64_t call_id = 0;
    int token = -1;  // -1: none
    Call call;       // the call as it was at the token (for the last token's usage and timings)
    std::optional<grpc::Status> status;
  };

  void StartLocked(uint64_t id, const doze::v1::GenerateRequest& request) {
    if (broken_) return;
    if (state_->sleeping.load()) return Push(id, grpc::Status(grpc::FAILED_PRECONDITION, "sleeping"));
    state_->num_requests.fetch_add(1);
    Call call;
    call.max_tokens = MaxTokens(request);
    call.prompt_tokens = request.token_ids().ids_size();
    if (call.max_tokens <= 0) return Push(id, grpc::Status::OK);
    state_->num_running.fetch_add(1);
    calls_[id] = call;
    ScheduleNextLocked(id);
  }

  // The call's next token: now (no delay) or after the delay on the timer thread.
  void ScheduleNextLocked(uint64_t id) {
    if (state_->delay_ms <= 0) return TokenDueLocked(id);
    refs_.fetch_add(1);
    state_->timers.At(NextTokenDue(*state_), [this, id] {
      {
        std::lock_guard<std::mutex> lock(mu_);
        TokenDueLocked(id);
        if (!flush_after_wake_up_) {
          flush_after_wake_up_ = true;
          refs_.fetch_add(1);
          state_->timers.AfterThisWakeUp([this] {
            {
              std::lock_guard<std::mutex> lock(mu_);
              flush_after_wake_up_ = false;
            }
            Flush();
            Unref();
          });
        }
      }
      Unref();
    });
  }

  void TokenDueLocked(uint64_t id) {
    auto it = calls_.find(id);
    if (it == calls_.end()) return;  // cancelled meanwhile
    Call& call = it->second;
    Event event;
    event.call_id = id;
    event.token = call.next_token++;
    state_->generated_tokens.fetch_add(1);
    if (event.token == 0) call.first_token_ms = MillisSince(call.start);
    event.call = call;
    if (call.next_token == call.max_tokens) {
      event.status = grpc::Status::OK;
      state_->num_running.fetch_sub(1);
      calls_.erase(it);
    }
    pending_.push_back(std::move(event));
  }

  void Push(uint64_t id, grpc::Status status) {
    Event event;
    event.call_id = id;
    event.status = std::move(status);
    pending_.push_back(std::move(event));
  }

  void AbortLocked(uint64_t id) {
    if (calls_.erase(id) == 0) return;
    state_->num_running.fetch_sub(1);
    state_->num_aborted.fetch_add(1);
    Push(id, grpc::Status(grpc::CANCELLED, "cancelled by the client"));
  }

  void AbortAllLocked() {
    while (!calls_.empty()) AbortLocked(calls_.begin()->first);
  }

  // Writes what is pending in one message when no write is in flight; finishes once no call is open and no
  // command can come.
  void Flush() {
    enum class Action { kNone, kWrite, kFinish } action = Action::kNone;
    grpc::Status status;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (writing_ || finish_started_) return;
      if (broken_) pending_.clear();
      status = broken_ ? grpc::Status::CANCELLED : grpc::Status::OK;
      if (!pending_.empty()) {
        FillResponseLocked();
        writing_ = true;
        action = Action::kWrite;
      } else if (calls_.empty() && (reads_done_ || broken_)) {
        finish_started_ = true;
        action = Action::kFinish;
      }
    }
    if (action == Action::kWrite) StartWrite(&response_);
    if (action == Action::kFinish) Finish(status);
  }

  void FillResponseLocked() {
    response_.Clear();
    for (const Event& event : pending_) {
      doze::v1::CallEvent* out = response_.add_events();
      out->set_call_id(event.call_id);
      if (event.token >= 0) {
        FillToken(*state_, event.token, event.status.has_value(), event.call.prompt_tokens,
                  event.call.max_tokens, event.call.start, event.call.first_token_ms,
                  out->mutable_response());
      }
      if (event.status) {
        out->mutable_status()->set_code(event.status->error_code());
        out->mutable_status()->set_message(event.status->error_message());
      } else {
        in_flight_.push_back(event.call_id);
      }
    }
    pending_.clear();
  }

  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  FakeState* const state_;
  std::atomic<int> refs_{1};  // gRPC's (until OnDone) and one per timer callback pending
  doze::v1::GenerateStreamRequest request_;
  std::mutex mu_;
  std::map<uint64_t, Call> calls_;  // open
  std::vector<Event> pending_;
  std::vector<uint64_t> in_flight_;  // calls whose token (not their last) rides the write in flight
  bool flush_after_wake_up_ = false;
  bool reads_done_ = false;
  bool broken_ = false;
  bool writing_ = false;
  bool finish_started_ = false;
  doze::v1::GenerateStreamResponse response_;
};

class FakeWorker final : public doze::v1::Worker::CallbackService {
 public:
  explicit FakeWorker(FakeState* state) : state_(state) {}

  grpc::ServerWriteReactor<doze::v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext*, const doze::v1::GenerateRequest* request) override {
    return new FakeGenerate(state_, *request);
  }

  grpc::ServerBidiReactor<doze::v1::GenerateStreamRequest, doze::v1::GenerateStreamResponse>* GenerateStream(
      grpc::CallbackServerContext*) override {
    return new FakeGenerateStream(state_);
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
    response->mutable_counters()->set_num_aborted(state_->num_aborted.load());
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

// Pins the process to the CPUs of DOZE_FAKE_CPUS (a kernel CPU list: "2-7,10,12-15"), when set.
void PinFromEnvironment() {
  const char* cpus = std::getenv("DOZE_FAKE_CPUS");
  if (cpus == nullptr) return;
  absl::StatusOr<cpu_set_t> set = doze::ParseCpuList(cpus);
  absl::Status pinned = set.ok() ? doze::PinThisThread(*set) : set.status();
  if (!pinned.ok()) std::fprintf(stderr, "doze-fake-worker: DOZE_FAKE_CPUS: %s\n", pinned.ToString().c_str());
}

// Blocks SIGUSR1 in this thread and every thread started after it, so that only HangUpOnSignal takes it.
void BlockHangUpSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// Shuts `server` down at SIGUSR1 (the calls in flight are cancelled, the listener closes); `hung_up` tells
// main.
void HangUpOnSignal(grpc::Server* server, std::atomic<bool>* hung_up) {
  std::thread([server, hung_up] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    int signal = 0;
    if (sigwait(&set, &signal) != 0) return;
    hung_up->store(true);
    server->Shutdown(std::chrono::system_clock::now());
  }).detach();
}

}  // namespace

int main(int argc, char** argv) {
  BlockHangUpSignal();
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
  state.step_clock = EnvInt("DOZE_FAKE_STEP_CLOCK", 0) != 0;
  FakeWorker service(&state);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    std::cerr << "error: cannot listen on " << listen << std::endl;
    return 1;
  }
  std::atomic<bool> hung_up{false};
  HangUpOnSignal(server.get(), &hung_up);
  std::cout << "{\"event\":\"ready\",\"function\":\"" << function << "\"}" << std::endl;
  server->Wait();
  if (!hung_up.load()) return 0;
  std::this_thread::sleep_for(std::chrono::milliseconds(EnvInt("DOZE_FAKE_HANGUP_EXIT_MS", 1500)));
  std::cerr << "error: hung up (SIGUSR1)" << std::endl;
  return 1;
}

// doze-gateway in front of real doze-worker processes (CPU backend, the tiny test checkpoint), all on real
// processes and sockets: completions both ways, the start on first request, all three functions at once, a
// worker killed with requests queued and in flight, and a client that leaves mid-stream.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/gateway/gateway_process.h"
#include "tests/gateway/http_test_client.h"
#include "tests/gateway/worker_stats_client.h"

namespace doze::gateway {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;
using testing::Fetch;
using testing::TestResponse;

constexpr char kConfig[] = R"(
server: { listen: 127.0.0.1:0 }
model: { path: $MODEL, backend: cpu }
workers:
  binary: $BUILD/bin/doze-worker
  socket_dir: $SOCKETS
  start_timeout: 60s
  queue_timeout: 60s
  backoff_initial: 500ms
functions:
  customer_service:
    system_prompt: "你是一名电商客服主管。"
    temperature: 0
    max_tokens: 8
    response_format: json_object
    worker: { max_num_seqs: 8, max_in_flight: 1 }
  copy_polish:
    system_prompt: "你是一名资深电商文案编辑。"
    temperature: 0.3
    max_tokens: 8
    worker: { max_num_seqs: 8 }
  table_parse:
    system_prompt: "你是一名数据分析师。"
    max_tokens: 8
    worker: { max_num_seqs: 8 }
)";

class GatewayE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string build = std::getenv("DOZE_BUILD_DIR");
    sockets_ = absl::StrCat("/tmp/doze-e2e-", getpid(), "-", ++counter_);
    std::string dir = testing::FreshTestDir(
        absl::StrCat("gateway_e2e_", ::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::string config = absl::StrReplaceAll(
        kConfig,
        {{"$MODEL", ModelDir(build + "/models/tiny-tied-gqa2")}, {"$BUILD", build}, {"$SOCKETS", sockets_}});
    config += ExtraConfig();
    dir_ = dir;
    config_ = config;
    gateway_ = std::make_unique<testing::GatewayProcess>(dir, config);
    port_ = gateway_->port();
    ASSERT_NE(port_, 0) << "see " << gateway_->log_path();
  }

  // YAML appended to kConfig by fixtures that need more.
  virtual std::string ExtraConfig() const { return ""; }

  // The model folder the workers serve, given the build's tiny checkpoint.
  virtual std::string ModelDir(const std::string& built) { return built; }

  Json Status() { return Json::parse(Fetch(port_, "GET", "/ops/status").body)["functions"]; }

  // Polls /ops/status until `function`'s `key` (a JSON pointer) equals `want`, for up to 10 s.
  bool WaitForStatus(const std::string& function, const std::string& pointer, const Json& want) {
    for (int i = 0; i < 200; ++i) {
      if (Status()[function][Json::json_pointer(pointer)] == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  TestResponse Chat(const std::string& function, const std::string& extra = "") {
    return Fetch(port_, "POST", "/v1/chat/completions",
                 absl::StrCat(R"({"model":")", function,
                              R"(","messages":[{"role":"user","content":"耳机音质不错"}])", extra, "}"),
                 {}, 120000);
  }

  // The configuration without table_parse.
  std::string WithoutTableParse() const {
    return absl::StrReplaceAll(
        config_,
        {{"  table_parse:\n    system_prompt: \"你是一名数据分析师。\"\n    max_tokens: 8\n    worker: { "
          "max_num_seqs: 8 }\n",
          ""}});
  }

  // Writes `yaml` as the configuration and reloads it (SIGHUP); returns whether /ops/status then shows
  // `function` (`present`) or not within 5 s.
  bool Reload(const std::string& yaml, const std::string& function, bool present) {
    std::ofstream(dir_ + "/doze.yaml") << yaml;
    gateway_->Signal(SIGHUP);
    for (int i = 0; i < 200 && Status().contains(function) != present; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    return Status().contains(function) == present;
  }

  // Starts `function`'s worker with a whole answer, then a stream of `max_tokens` read to its first chunk.
  std::unique_ptr<testing::StreamingRequest> StartStream(const std::string& function, int max_tokens) {
    EXPECT_EQ(Chat(function).status, 200);
    auto stream = std::make_unique<testing::StreamingRequest>(
        port_, "/v1/chat/completions",
        absl::StrCat(R"({"model":")", function,
                     R"(","messages":[{"role":"user","content":"hi"}],"stream":true,)", R"("max_tokens":)",
                     max_tokens, "}"));
    EXPECT_TRUE(stream->ReadUntil("chat.completion.chunk", 60000));
    return stream;
  }

  static inline int counter_ = 0;
  std::string dir_;     // the gateway's folder: its doze.yaml
  std::string config_;  // what doze.yaml holds
  std::string sockets_;
  std::unique_ptr<testing::GatewayProcess> gateway_;
  uint16_t port_ = 0;
};

TEST_F(GatewayE2eTest, FirstRequestStartsTheWorkerThenStreamsAndAnswers) {
  EXPECT_EQ(Status()["copy_polish"]["state"], "stopped");
  TestResponse response = Chat("copy_polish");
  ASSERT_EQ(response.status, 200) << response.body;
  Json body = Json::parse(response.body);
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_GT(body["usage"]["prompt_tokens"].get<int>(), 10);
  EXPECT_GE(body["usage"]["completion_tokens"].get<int>(), 1);
  Json status = Status()["copy_polish"];
  EXPECT_EQ(status["state"], "ready");
  EXPECT_TRUE(status["pid"].is_number());
  EXPECT_EQ(status["cold_starts"], 1);

  TestResponse stream = Chat("copy_polish", R"(,"stream":true,"stream_options":{"include_usage":true})");
  ASSERT_EQ(stream.status, 200) << stream.body;
  std::vector<std::string> events = testing::SseData(stream.body);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_EQ(Json::parse(events.front())["object"], "chat.completion.chunk");
  EXPECT_EQ(Status()["copy_polish"]["cold_starts"], 1);
}

// vLLM's extra sampling parameters reach the engine (they were ignored without a word): top_k 1 and min_p 1
// keep only the most likely token, so a hot, seeded request answers what greedy decoding does, which the same
// request without them does not.
TEST_F(GatewayE2eTest, VllmSamplingParametersReachTheWorker) {
  const auto text = [this](const std::string& extra) {
    TestResponse response = Chat("copy_polish", absl::StrCat(R"(,"max_tokens":12)", extra));
    EXPECT_EQ(response.status, 200) << extra << ": " << response.body;
    return Json::parse(response.body)["choices"][0]["message"]["content"].get<std::string>();
  };
  const std::string greedy = text(R"(,"temperature":0)");
  EXPECT_NE(text(R"(,"temperature":1.5,"seed":7)"), greedy);
  EXPECT_EQ(text(R"(,"temperature":1.5,"seed":7,"top_k":1)"), greedy);
  EXPECT_EQ(text(R"(,"temperature":1.5,"seed":7,"min_p":1.0)"), greedy);
  TestResponse past = Chat("copy_polish", R"(,"stop_token_ids":[151936])");
  EXPECT_EQ(past.status, 400);
  EXPECT_THAT(past.body, HasSubstr("stop_token_ids: token id 151936 is past the model's vocabulary"));
}

TEST_F(GatewayE2eTest, ConcurrentRequestsToAllThreeFunctions) {
  std::vector<std::future<TestResponse>> responses;
  for (int i = 0; i < 3; ++i) {
    for (const char* function : {"customer_service", "copy_polish", "table_parse"}) {
      responses.push_back(std::async(std::launch::async, [this, function] { return Chat(function); }));
    }
  }
  for (auto& response : responses) {
    TestResponse done = response.get();
    EXPECT_EQ(done.status, 200) << done.body;
  }
  Json status = Status();
  for (const char* function : {"customer_service", "copy_polish", "table_parse"}) {
    EXPECT_EQ(status[function]["state"], "ready") << function;
    EXPECT_EQ(status[function]["cold_starts"], 1) << function;
    EXPECT_EQ(status[function]["requests"], 3) << function;
  }
}

TEST_F(GatewayE2eTest, KilledWorkerWithRequestsQueuedAndInFlight) {
  std::unique_ptr<testing::StreamingRequest> stream = StartStream("customer_service", 400);
  ASSERT_FALSE(HasFailure());
  std::vector<std::future<TestResponse>> queued;
  for (int i = 0; i < 2; ++i)
    queued.push_back(std::async(std::launch::async, [this] { return Chat("customer_service"); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  kill(Status()["customer_service"]["pid"].get<pid_t>(), SIGKILL);
  EXPECT_TRUE(stream->ReadUntil("\"error\"", 30000)) << stream->received();
  for (auto& response : queued) {
    TestResponse done = response.get();
    EXPECT_EQ(done.status, 200) << done.body;
  }
  Json status = Status()["customer_service"];
  EXPECT_EQ(status["state"], "ready");
  EXPECT_EQ(status["cold_starts"], 2);
  EXPECT_THAT(status["last_error"].get<std::string>(), HasSubstr("killed by signal 9"));
}

TEST_F(GatewayE2eTest, ClientLeavingMidStreamCancelsTheWorkersRequest) {
  ASSERT_EQ(Chat("copy_polish").status, 200);
  std::string address = absl::StrCat("unix:", sockets_, "/copy_polish.sock");
  std::optional<v1::StatsResponse> before = testing::WorkerStats(address);
  ASSERT_TRUE(before.has_value());
  {
    testing::StreamingRequest stream(
        port_, "/v1/chat/completions",
        R"({"model":"copy_polish","messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":400})");
    ASSERT_TRUE(stream.ReadUntil("chat.completion.chunk", 60000));
  }
  std::optional<v1::StatsResponse> after;
  for (int i = 0; i < 200; ++i) {
    after = testing::WorkerStats(address);
    if (after.has_value() && after->counters().num_running() == 0 && after->counters().num_waiting() == 0)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->counters().num_running(), 0);
  EXPECT_EQ(after->counters().num_requests(), before->counters().num_requests() + 1);
  EXPECT_LT(after->counters().generated_tokens() - before->counters().generated_tokens(), 400);
}

// A reload that removes a function while one of its streams runs: its worker finishes the stream before it
// exits and the gateway keeps serving (the call counted into the removed function's metrics after the
// function had gone, and the gateway crashed).
TEST_F(GatewayE2eTest, ReloadRemovingAFunctionWithAStreamInFlightKeepsServing) {
  std::unique_ptr<testing::StreamingRequest> stream = StartStream("table_parse", 800);
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(Reload(WithoutTableParse(), "table_parse", /*present=*/false))
      << "the reload did not remove the function";
  EXPECT_TRUE(stream->ReadUntil("[DONE]", 60000)) << stream->received();
  EXPECT_EQ(Fetch(port_, "GET", "/healthz").status, 200);
  EXPECT_EQ(Chat("copy_polish").status, 200);
  EXPECT_EQ(gateway_->WaitExit(100), -1) << "the gateway exited; see " << gateway_->log_path();
}

// A function removed while its stream runs and added back before that stream ends: the new worker starts
// beside the old one, which still drains (both used to want the same socket, and the new start failed).
TEST_F(GatewayE2eTest, FunctionAddedBackWhileItsOldWorkerDrainsStartsAFreshWorker) {
  std::unique_ptr<testing::StreamingRequest> stream = StartStream("table_parse", 800);
  ASSERT_FALSE(HasFailure());
  const pid_t old_pid = Status()["table_parse"]["pid"].get<pid_t>();
  ASSERT_TRUE(Reload(WithoutTableParse(), "table_parse", /*present=*/false))
      << "the reload did not remove the function";
  ASSERT_TRUE(Reload(config_, "table_parse", /*present=*/true)) << "the reload did not add the function back";
  ASSERT_EQ(kill(old_pid, 0), 0) << "the old worker ended before the function came back: nothing to test";

  TestResponse response = Chat("table_parse");
  EXPECT_EQ(response.status, 200) << response.body;
  EXPECT_NE(Status()["table_parse"]["pid"], old_pid);
  EXPECT_TRUE(stream->ReadUntil("[DONE]", 60000)) << stream->received();
  EXPECT_EQ(Chat("table_parse").status, 200);
}

// Workers serving a copy of the tiny checkpoint, which a test may spoil.
class GatewayModelCopyE2eTest : public GatewayE2eTest {
 protected:
  std::string ModelDir(const std::string& built) override {
    model_ = testing::FreshTestDir("gateway_e2e_model_copy") + "/model";
    std::filesystem::copy(built, model_, std::filesystem::copy_options::recursive);
    return model_;
  }
  std::string model_;
};

// model.safetensors truncated under a running worker: the worker, whose weights are mapped from it, dies of a
// bus error and says why in the gateway's log; the request is answered (its retry finds the file truncated).
TEST_F(GatewayModelCopyE2eTest, WorkerWhoseModelFileIsTruncatedSaysWhyItDied) {
  ASSERT_EQ(Chat("copy_polish").status, 200);
  std::filesystem::resize_file(model_ + "/model.safetensors", 1 << 20);
  TestResponse after = Chat("copy_polish");
  EXPECT_EQ(after.status, 503) << after.body;
  EXPECT_THAT(after.body, HasSubstr("model.safetensors: truncated")) << after.body;
  std::string log;
  for (int i = 0; i < 100 && log.find("bus error (SIGBUS)") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream in(gateway_->log_path());
    log.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  EXPECT_THAT(log, HasSubstr("[copy_polish] doze-worker: bus error (SIGBUS): a memory-mapped model file was "
                             "truncated or replaced while the worker ran"));
}

// The lifecycle policy driving real workers: a one-second idle timeout outside any resident window.
class GatewayIdleStopE2eTest : public GatewayE2eTest {
 protected:
  std::string ExtraConfig() const override { return "schedule: { idle_timeout: 1s, min_ready: 0s }\n"; }
};

TEST_F(GatewayIdleStopE2eTest, IdleWorkerProcessEndsAndTheNextRequestBringsItBack) {
  ASSERT_EQ(Chat("copy_polish").status, 200);
  const pid_t first = Status()["copy_polish"]["pid"].get<pid_t>();
  ASSERT_TRUE(WaitForStatus("copy_polish", "/lifecycle/state", "stopped")) << Status()["copy_polish"].dump();
  for (int i = 0; i < 100 && kill(first, 0) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_NE(kill(first, 0), 0) << "the worker process is still there";
  EXPECT_TRUE(Status()["copy_polish"]["pid"].is_null());

  ASSERT_EQ(Chat("copy_polish").status, 200);
  Json status = Status()["copy_polish"];
  EXPECT_NE(status["pid"].get<pid_t>(), first);
  const Json& ledger = status["lifecycle"]["ledger"];
  EXPECT_EQ(ledger["cold_starts"], 2);
  EXPECT_GT(ledger["gpu_seconds"]["busy"].get<double>(), 0);
  EXPECT_GE(ledger["gpu_seconds"]["idle"].get<double>(), 0.9);
  EXPECT_GT(ledger["gpu_seconds"]["warming"].get<double>(), 0);
}

class GatewayIdleSleepE2eTest : public GatewayE2eTest {
 protected:
  std::string ExtraConfig() const override {
    return "schedule: { idle_timeout: 1s, min_ready: 0s, idle_action: sleep }\n";
  }
};

TEST_F(GatewayIdleSleepE2eTest, IdleWorkerSleepsInItsProcessAndWakesForTheNextRequest) {
  ASSERT_EQ(Chat("table_parse").status, 200);
  const pid_t pid = Status()["table_parse"]["pid"].get<pid_t>();
  ASSERT_TRUE(WaitForStatus("table_parse", "/state", "sleeping")) << Status()["table_parse"].dump();
  EXPECT_EQ(kill(pid, 0), 0);
  std::optional<v1::StatsResponse> stats =
      testing::WorkerStats(absl::StrCat("unix:", sockets_, "/table_parse.sock"));
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->state(), v1::WORKER_STATE_SLEEPING);  // the worker itself says so, not only the gateway

  ASSERT_EQ(Chat("table_parse").status, 200);
  EXPECT_EQ(Status()["table_parse"]["pid"].get<pid_t>(), pid);
  EXPECT_EQ(Status()["table_parse"]["cold_starts"], 1);
}

// The lifecycle policy's resident windows starting real workers by the clock, with no request sent.
class GatewayResidentE2eTest : public GatewayE2eTest {
 protected:
  std::string ExtraConfig() const override {
    return "schedule: { timezone: UTC, resident: [{ days: daily, from: \"00:00\", to: \"24:00\" }] }\n";
  }

  // Polls /ops/status for up to 60 s (three workers start at once) until `function` is ready by the worker
  // process and by the policy; returns its status.
  Json AwaitReady(const std::string& function) {
    Json status;
    for (int i = 0; i < 1200; ++i) {
      status = Status()[function];
      if (status["state"] == "ready" && status["lifecycle"]["state"] == "ready") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return status;
  }
};

TEST_F(GatewayResidentE2eTest, AllDayWindowStartsEveryWorkerWithoutARequest) {
  for (const char* function : {"customer_service", "copy_polish", "table_parse"}) {
    Json status = AwaitReady(function);
    ASSERT_EQ(status["state"], "ready") << function << ": " << status.dump();
    EXPECT_EQ(status["lifecycle"]["state"], "ready") << function;
    EXPECT_TRUE(status["lifecycle"]["resident"].get<bool>()) << function;
    EXPECT_EQ(kill(status["pid"].get<pid_t>(), 0), 0) << function << ": the worker process is not there";
    EXPECT_EQ(status["requests"], 0) << function;
    EXPECT_EQ(status["lifecycle"]["ledger"]["cold_starts"], 0) << function;  // Nobody waited for it.
    EXPECT_THAT(
        status["lifecycle"]["transitions"].dump(),
        HasSubstr(R"("from":"stopped","reason":"resident window mon-sun 00:00-24:00","to":"starting")"))
        << function;
  }
  // The window keeps the worker that served a request up past any idle timeout.
  ASSERT_EQ(Chat("copy_polish").status, 200);
  EXPECT_EQ(Status()["copy_polish"]["lifecycle"]["ledger"]["cold_starts"], 0);
}

// A window opening one to two minutes from now, with ten minutes of pre-warm: the gateway starts inside the
// pre-warm, so the policy starts the worker before the window opens.
class GatewayPrewarmE2eTest : public GatewayResidentE2eTest {
 protected:
  std::string ExtraConfig() const override {
    const absl::CivilMinute from = absl::ToCivilMinute(absl::Now(), absl::UTCTimeZone()) + 2;
    const absl::CivilMinute to = from + 30;
    return absl::StrCat("schedule: { timezone: UTC, prewarm: 10m, resident: [{ days: daily, from: \"",
                        absl::FormatCivilTime(from).substr(11, 5), "\", to: \"",
                        absl::FormatCivilTime(to).substr(11, 5), "\" }] }\n");
  }
};

TEST_F(GatewayPrewarmE2eTest, WorkerStartsWithinThePrewarmBeforeTheWindowOpens) {
  Json status = AwaitReady("table_parse");
  ASSERT_EQ(status["state"], "ready") << status.dump();
  EXPECT_TRUE(status["lifecycle"]["resident"].get<bool>());
  EXPECT_THAT(status["lifecycle"]["transitions"].dump(), HasSubstr("\"reason\":\"prewarm 10m before "));
  EXPECT_EQ(status["requests"], 0);
}

}  // namespace
}  // namespace doze::gateway

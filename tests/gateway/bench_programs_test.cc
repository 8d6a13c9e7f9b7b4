// The gateway's benchmark programs run as bench/gateway_bench.sh runs them, on small loads: the loopback
// floor (doze_loopback_send_bench), the rate test against the canned server (doze_echo_server) and through a
// gateway with its direct worker hop, and polled streams of stamped tokens through a gateway. What is checked
// is that they work and count what they should (every request answered, every stamp in order), not their
// timings.
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/cli_process.h"
#include "tests/gateway/gateway_process.h"

namespace doze {
namespace {

using Json = nlohmann::json;

std::string Bin(const std::string& name) {
  return std::string(std::getenv("DOZE_BUILD_DIR")) + "/bin/" + name;
}

// The JSON lines of a program's standard output.
std::vector<Json> JsonLines(const std::string& out) {
  std::vector<Json> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] == '{') lines.push_back(Json::parse(line));
  }
  return lines;
}

TEST(BenchProgramsTest, LoopbackSendBenchReportsEachReaderKind) {
  testing::ProcessResult run = testing::RunProcess(
      {Bin("doze_loopback_send_bench"), "--sockets", "8", "--bursts", "5", "--interval-ms", "1"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::vector<Json> lines = JsonLines(run.out);
  ASSERT_EQ(lines.size(), 3u) << run.out;
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["readers"], (std::vector<std::string>{"blocking", "epoll", "poll"}[i]));
    EXPECT_EQ(lines[i]["sockets"], 8);
    EXPECT_GT(lines[i]["burst_ms"]["p50"].get<double>(), 0);
    EXPECT_GE(lines[i]["burst_ms"]["p99"].get<double>(), lines[i]["burst_ms"]["p50"].get<double>());
  }
  testing::ProcessResult bad = testing::RunProcess({Bin("doze_loopback_send_bench"), "--readers", "nap"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("unknown reader kind nap"), std::string::npos) << bad.err;
}

TEST(BenchProgramsTest, PollReadsNeedsEventLoopThreads) {
  testing::ProcessResult run = testing::RunProcess(
      {Bin("doze_gateway_load"), "--port", "1", "--mode", "streams", "--poll-reads", "1"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("--poll-reads needs"), std::string::npos) << run.err;
}

TEST(BenchProgramsTest, RateTestAgainstTheEchoServerAnswersEveryRequest) {
  const std::string dir = gateway::testing::FreshTestDir("EchoServer");
  gateway::testing::ServerProcess server({Bin("doze_echo_server")}, dir + "/echo.log");
  ASSERT_GT(server.port(), 0) << server.log_path();
  testing::ProcessResult run =
      testing::RunProcess({Bin("doze_gateway_load"), "--port", std::to_string(server.port()), "--mode",
                           "rate", "--rate", "200", "--seconds", "0.5", "--connections", "4"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::vector<Json> lines = JsonLines(run.out);
  ASSERT_EQ(lines.size(), 1u) << run.out;
  EXPECT_EQ(lines[0]["errors"], 0);
  EXPECT_GE(lines[0]["requests"].get<int>(), 95);  // 200 a second for half a second, on 4 connections
  EXPECT_GE(lines[0]["added_ms"]["p99"].get<double>(), lines[0]["added_ms"]["p50"].get<double>());
}

// A gateway on the stand-in worker, as bench/gateway_bench.sh configures it (stamped tokens on a step clock).
class BenchGateway {
 public:
  explicit BenchGateway(const std::string& name) {
    dir_ = gateway::testing::FreshTestDir(name);
    gateway::testing::WriteTokenizerOnlyModel(dir_ + "/model", 256);
    sockets_ = absl::StrCat("/tmp/doze-bench-test-", getpid());
    const std::string config = absl::StrReplaceAll(
        R"(
server: { listen: 127.0.0.1:0, max_connections: 256 }
model: { path: $DIR/model, backend: cpu }
workers: { binary: $BUILD/tests/doze-fake-worker, socket_dir: $SOCKETS, max_queue: 256 }
functions:
  copy_polish: { system_prompt: "You polish copy.", worker: { max_in_flight: 256 } }
)",
        {{"$DIR", dir_}, {"$BUILD", std::getenv("DOZE_BUILD_DIR")}, {"$SOCKETS", sockets_}});
    gateway_ = std::make_unique<gateway::testing::GatewayProcess>(
        dir_, config,
        std::map<std::string, std::string>{{"DOZE_FAKE_TOKEN_DELAY_MS", "5"},
                                           {"DOZE_FAKE_STAMP_TOKENS", "1"},
                                           {"DOZE_FAKE_STEP_CLOCK", "1"}});
  }
  int port() const { return gateway_->port(); }
  std::string worker() const { return "unix:" + sockets_ + "/copy_polish.sock"; }
  const std::string& log() const { return gateway_->log_path(); }

 private:
  std::string dir_, sockets_;
  std::unique_ptr<gateway::testing::GatewayProcess> gateway_;
};

TEST(BenchProgramsTest, PolledStreamsCountEveryStampAndTheDirectBaseline) {
  BenchGateway gateway("PolledStreams");
  ASSERT_GT(gateway.port(), 0) << gateway.log();
  testing::ProcessResult run = testing::RunProcess({Bin("doze_gateway_load"),
                                                    "--port",
                                                    std::to_string(gateway.port()),
                                                    "--mode",
                                                    "streams",
                                                    "--streams",
                                                    "8",
                                                    "--seconds",
                                                    "0.5",
                                                    "--max-tokens",
                                                    "4",
                                                    "--stamped-tokens",
                                                    "1",
                                                    "--stream-threads",
                                                    "2",
                                                    "--poll-reads",
                                                    "1",
                                                    "--start-spread-ms",
                                                    "20",
                                                    "--direct-worker",
                                                    gateway.worker(),
                                                    "--direct-spread-ms",
                                                    "20"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::vector<Json> lines = JsonLines(run.out);
  ASSERT_EQ(lines.size(), 1u) << run.out;
  const Json& r = lines[0];
  EXPECT_EQ(r["errors"], 0);
  EXPECT_EQ(r["message_stamp_errors"], 0);
  EXPECT_GE(r["requests"].get<int>(), 8);
  EXPECT_EQ(r["messages"].get<int>(), 4 * r["requests"].get<int>());  // every stream's four stamps
  EXPECT_EQ(r["message_direct_errors"], 0);
  EXPECT_GE(r["message_direct_messages"].get<int>(), 8 * 4);
}

TEST(BenchProgramsTest, RateThroughTheGatewayWithItsDirectWorkerHop) {
  BenchGateway gateway("RateDirect");
  ASSERT_GT(gateway.port(), 0) << gateway.log();
  testing::ProcessResult run = testing::RunProcess(
      {Bin("doze_gateway_load"), "--port", std::to_string(gateway.port()), "--mode", "rate", "--rate", "200",
       "--seconds", "0.5", "--connections", "4", "--max-tokens", "1", "--direct-worker", gateway.worker()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::vector<Json> lines = JsonLines(run.out);
  ASSERT_EQ(lines.size(), 1u) << run.out;
  EXPECT_EQ(lines[0]["errors"], 0);
  EXPECT_GE(lines[0]["requests"].get<int>(), 95);
  EXPECT_EQ(lines[0]["direct_errors"], 0);
  EXPECT_GE(lines[0]["direct_requests"].get<int>(), 95);  // the same schedule straight to the worker
}

}  // namespace
}  // namespace doze

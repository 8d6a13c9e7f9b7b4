// Real clients of doze-gateway run by node: the official `openai` npm client completes a streaming and a
// non-streaming chat, and the web chat page's own script (in jsdom) chats. The packages are installed by
// scripts/setup.sh into .cache/node; without them the tests are skipped.
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/gateway/gateway_process.h"
#include "tests/gateway/http_test_client.h"

namespace doze::gateway {
namespace {

// The npm packages scripts/setup.sh installs for these tests.
std::string NodeModules() {
  return std::string(std::getenv("DOZE_SOURCE_DIR")) + "/.cache/node/node_modules";
}

bool HaveNodePackage(const std::string& package) {
  return std::filesystem::exists(NodeModules() + "/" + package + "/package.json") &&
         std::system("node --version >/dev/null") == 0;
}

// A gateway over the stand-in worker with `functions` (YAML lines under `functions:`).
std::unique_ptr<testing::GatewayProcess> StartGateway(const std::string& name, const std::string& functions) {
  std::string dir = testing::FreshTestDir(name);
  testing::WriteTokenizerOnlyModel(dir + "/model", 1024);
  std::string sockets = absl::StrCat("/tmp/doze-", name, "-", getpid());
  std::string config =
      absl::StrCat("server: { listen: 127.0.0.1:0 }\nmodel: { path: ", dir,
                   "/model }\nworkers: { binary: ", std::getenv("DOZE_BUILD_DIR"),
                   "/tests/doze-fake-worker, socket_dir: ", sockets, " }\nfunctions:\n", functions);
  return std::make_unique<testing::GatewayProcess>(dir, config);
}

// Runs tests/e2e/`script` under node with `args`; returns its exit status and what it printed.
std::pair<int, std::string> RunNodeScript(const std::string& script, const std::string& args) {
  std::string command = absl::StrCat("NODE_PATH=", NodeModules(), " node ", std::getenv("DOZE_SOURCE_DIR"),
                                     "/tests/e2e/", script, " ", args, " 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return {-1, "cannot run " + command};
  std::string output;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

TEST(GatewayOpenAiClientTest, StreamingAndNonStreamingChat) {
  if (!HaveNodePackage("openai")) {
    GTEST_SKIP() << "node or the openai npm package (scripts/setup.sh installs it) is missing";
  }
  auto gateway = StartGateway("openai_client", "  copy_polish: { system_prompt: Polish. }\n");
  ASSERT_NE(gateway->port(), 0) << gateway->log_path();
  auto [status, output] = RunNodeScript(
      "gateway_openai_client.mjs", absl::StrCat("http://127.0.0.1:", gateway->port(), "/v1 copy_polish"));
  EXPECT_EQ(status, 0) << output;
  EXPECT_NE(output.find("\"non_streaming\""), std::string::npos) << output;
}

// The web chat page at GET /, its script run in jsdom against the live gateway
// (tests/e2e/chat_page_client.mjs): two streamed turns, a stop part way (the gateway counts the cancelled
// call as 499), an error shown, a third turn with a temperature (a bad one sends nothing); the script's own
// made-up streams never reach the gateway.
TEST(GatewayChatPageTest, PageChatsStopsAndShowsErrors) {
  auto gateway = StartGateway("chat_page",
                              "  copy_polish: { system_prompt: Polish., max_tokens: 8 }\n"
                              "  table_parse: { system_prompt: Tables., max_tokens: 400 }\n");
  ASSERT_NE(gateway->port(), 0) << gateway->log_path();
  testing::TestResponse page = testing::Fetch(gateway->port(), "GET", "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.headers["content-type"], "text/html; charset=utf-8");
  EXPECT_THAT(page.headers["content-security-policy"], ::testing::HasSubstr("default-src 'self'"));
  EXPECT_THAT(page.headers["content-security-policy"], ::testing::HasSubstr("frame-ancestors 'none'"));
  EXPECT_EQ(page.headers["x-frame-options"], "DENY");
  EXPECT_THAT(page.body, ::testing::HasSubstr("fetch(\"/v1/chat/completions\""));
  EXPECT_EQ(testing::Fetch(gateway->port(), "HEAD", "/").status, 200);
  if (!HaveNodePackage("jsdom")) {
    GTEST_SKIP() << "node or the jsdom npm package (scripts/setup.sh installs it) is missing";
  }
  auto [status, output] = RunNodeScript(
      "chat_page_client.mjs", absl::StrCat("http://127.0.0.1:", gateway->port(), " copy_polish table_parse"));
  EXPECT_EQ(status, 0) << output;
  nlohmann::json functions =
      nlohmann::json::parse(testing::Fetch(gateway->port(), "GET", "/ops/status").body)["functions"];
  EXPECT_EQ(functions["copy_polish"]["requests_by_status"].value("200", 0), 3) << functions.dump();
  for (int i = 0; i < 100 && !functions["table_parse"]["requests_by_status"].contains("499"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    functions =
        nlohmann::json::parse(testing::Fetch(gateway->port(), "GET", "/ops/status").body)["functions"];
  }
  EXPECT_EQ(functions["table_parse"]["requests_by_status"].value("499", 0), 1) << functions.dump();
}

}  // namespace
}  // namespace doze::gateway

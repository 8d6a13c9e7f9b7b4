// The official `openai` npm client (a real client) completes a streaming and a non-streaming chat through
// doze-gateway. The package is installed by scripts/setup.sh into .cache/node; without it the test is
// skipped.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/gateway/gateway_process.h"

namespace doze::gateway {
namespace {

TEST(GatewayOpenAiClientTest, StreamingAndNonStreamingChat) {
  std::string source = std::getenv("DOZE_SOURCE_DIR");
  std::string build = std::getenv("DOZE_BUILD_DIR");
  std::string node_modules = source + "/.cache/node/node_modules";
  if (!std::filesystem::exists(node_modules + "/openai/package.json") ||
      std::system("node --version >/dev/null") != 0) {
    GTEST_SKIP() << "node or the openai npm package (scripts/setup.sh installs it) is missing";
  }
  std::string dir = testing::FreshTestDir("openai_client");
  testing::WriteTokenizerOnlyModel(dir + "/model", 1024);
  std::string sockets = absl::StrCat("/tmp/doze-openai-test-", getpid());
  std::string config =
      absl::StrCat("server: { listen: 127.0.0.1:0 }\nmodel: { path: ", dir,
                   "/model }\nworkers: { binary: ", build, "/tests/doze-fake-worker, socket_dir: ", sockets,
                   " }\nfunctions:\n  copy_polish: { system_prompt: Polish. }\n");
  testing::GatewayProcess gateway(dir, config);
  ASSERT_NE(gateway.port(), 0) << gateway.log_path();
  std::string command =
      absl::StrCat("NODE_PATH=", node_modules, " node ", source, "/tests/e2e/gateway_openai_client.mjs",
                   " http://127.0.0.1:", gateway.port(), "/v1 copy_polish 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  int status = pclose(pipe);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << output;
  EXPECT_NE(output.find("\"non_streaming\""), std::string::npos) << output;
}

}  // namespace
}  // namespace doze::gateway

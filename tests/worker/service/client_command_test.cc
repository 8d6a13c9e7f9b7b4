// `doze client` against a running worker prints what `doze generate` prints for the same input file.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/e2e/cli_process.h"
#include "tests/worker/service/test_worker.h"

namespace doze::service::testing {
namespace {

using doze::testing::ProcessResult;
using doze::testing::RunProcess;
using doze::testing::TestDataDir;

constexpr char kInput[] = R"({"prompt": "Hello there, how are you", "max_tokens": 12}
{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]}
{"prompt_ids": [9707, 1879, 0, 42, 42, 151643], "max_tokens": 20, "ignore_eos": true}
{"prompt": "Once upon a time", "temperature": 0.8, "top_p": 0.9, "seed": 5, "max_tokens": 16}
{"prompt": "Stop here please", "stop": [" the", "a"], "max_tokens": 30}
{"prompt": "A long answer", "max_tokens": 64, "top_k": 3, "temperature": 1.2, "seed": 11}
)";

std::string WriteInput() {
  std::string path = TestDataDir() + "/client_command_test_input.jsonl";
  std::ofstream(path) << kInput;
  return path;
}

void ExpectClientMatchesGenerate(const std::vector<std::string>& flags) {
  const std::string input = WriteInput();
  std::vector<std::string> generate = {TestWorker::Binary("doze"),
                                       "generate",
                                       "--model",
                                       TestWorker::ModelDir(),
                                       "--backend",
                                       "cpu",
                                       "--threads",
                                       "2",
                                       "--kv-cache-tokens",
                                       "65536",
                                       "--input",
                                       input};
  generate.insert(generate.end(), flags.begin(), flags.end());
  ProcessResult expected = RunProcess(generate);
  ASSERT_EQ(expected.exit_code, 0) << expected.err;

  TestWorker worker;
  worker.WaitReady();
  std::vector<std::string> client = {
      TestWorker::Binary("doze"), "client", "--target", worker.target(), "--input", input};
  client.insert(client.end(), flags.begin(), flags.end());
  ProcessResult actual = RunProcess(client);
  ASSERT_EQ(actual.exit_code, 0) << actual.err;
  EXPECT_EQ(actual.out, expected.out);
}

TEST(ClientCommandTest, PrintsWhatGeneratePrints) { ExpectClientMatchesGenerate({}); }

TEST(ClientCommandTest, PrintsWhatGeneratePrintsWithLogprobsAndTopLogits) {
  ExpectClientMatchesGenerate({"--logprobs", "3", "--top-logits", "4", "--max-tokens", "10"});
}

TEST(ClientCommandTest, HealthPrintsServing) {
  TestWorker worker;
  worker.WaitReady();
  ProcessResult health =
      RunProcess({TestWorker::Binary("doze"), "client", "--target", worker.target(), "--health"});
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_EQ(health.out, "SERVING\n");
}

TEST(ClientCommandTest, BenchColdRunsOnTheCpuBackend) {
  ProcessResult bench =
      RunProcess({TestWorker::Binary("doze"), "bench-cold", "--model", TestWorker::ModelDir(), "--backend",
                  "cpu", "--runs", "2", "--threads", "2", "--kv-cache-tokens", "4096"});
  ASSERT_EQ(bench.exit_code, 0) << bench.err;
  EXPECT_NE(bench.out.find("\"spawn_to_first_token_ms\""), std::string::npos) << bench.out;
  EXPECT_NE(bench.out.find("wake_to_first_token_ms"), std::string::npos) << bench.out;
}

}  // namespace
}  // namespace doze::service::testing

// The doze tool and doze-worker given bad flags or input, as a user would run them: each ends with a
// non-zero exit, not a signal or a hang, and its error names the problem (found by exploratory testing).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/cli_process.h"

namespace doze::testing {
namespace {

using ::testing::HasSubstr;

std::string Model() { return std::string(std::getenv("DOZE_BUILD_DIR")) + "/models/tiny-tied-gqa2"; }
std::string Worker() { return std::string(std::getenv("DOZE_BUILD_DIR")) + "/bin/doze-worker"; }

// A file of `text` in the test data folder.
std::string WriteInput(const std::string& name, const std::string& text) {
  const std::string path = TestDataDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

struct BadRun {
  const char* what;
  std::vector<std::string> argv;
  const char* error;  // a part of stderr
};

void ExpectRefused(const BadRun& run) {
  const ProcessResult result = RunProcess(run.argv);
  EXPECT_GT(result.exit_code, 0) << run.what << ": " << result.err;
  EXPECT_LT(result.exit_code, 128) << run.what << " (a signal): " << result.err;
  EXPECT_THAT(result.err, HasSubstr(run.error)) << run.what;
}

TEST(CliBadInputTest, EngineSizesOutOfRangeAreRefused) {
  const std::string input = WriteInput("bad-input-prompt.jsonl", R"({"prompt":"hello"})"
                                                                 "\n");
  const std::vector<std::string> generate = {DozeBinary(), "generate", "--model", Model(),        "--backend",
                                             "cpu",        "--input",  input,     "--max-tokens", "2"};
  const std::pair<std::vector<std::string>, const char*> cases[] = {
      {{"--max-num-seqs", "0"}, "--max-num-seqs: must be at least 1"},  // used to spin forever
      {{"--max-num-batched-tokens", "-1"}, "--max-num-batched-tokens: must be at least 1"},
      {{"--kv-cache-tokens", "2000000000"}, "--kv-cache-tokens: a CPU KV cache of 2000000000 tokens needs"},
      {{"--kv-cache-tokens", "-1"}, "--kv-cache-tokens: must be 0"},
      {{"--threads", "100000"}, "--threads: must be 0 (every core) to 1,024"},
      {{"--gpu-memory-fraction", "1.5"}, "--gpu-memory-fraction: must be in (0, 1]"},
  };
  for (const auto& [flags, error] : cases) {
    std::vector<std::string> argv = generate;
    argv.insert(argv.end(), flags.begin(), flags.end());
    ExpectRefused({flags[0].c_str(), argv, error});
  }
}

TEST(CliBadInputTest, InputLinesOutOfRangeAndFoldersAreRefused) {
  const std::pair<std::string, const char*> lines[] = {
      {R"({"prompt":"hello","max_tokens":4294967297})",
       "max_tokens: expected an integer from"},  // wrapped to 1
      {R"({"prompt":"hello","max_tokens":2.7})", "max_tokens: expected an integer"},
      {R"({"prompt_ids":[4294967297]})", "prompt_ids: expected an array of token ids"},
      {R"({"prompt":"hello","top_k":4294967296})", "top_k: expected an integer"},
  };
  for (const auto& [line, error] : lines) {
    const std::string input = WriteInput("bad-input-line.jsonl", line + "\n");
    ExpectRefused({line.c_str(),
                   {DozeBinary(), "generate", "--model", Model(), "--backend", "cpu", "--input", input},
                   error});
  }
  ExpectRefused({"a folder as input",
                 {DozeBinary(), "generate", "--model", Model(), "--backend", "cpu", "--input", TestDataDir()},
                 "not a file"});
  // --seed -1 had wrapped to 2^64-1 (a line's "seed": -1 is refused).
  const std::string input = WriteInput("bad-input-seed.jsonl", "{\"prompt\":\"hello\"}\n");
  for (const char* seed : {"-1", "18446744073709551616", "7x"}) {
    ExpectRefused(
        {seed,
         {DozeBinary(), "generate", "--model", Model(), "--backend", "cpu", "--input", input, "--seed", seed},
         "--seed: expected an integer from 0 to 2^64-1"});
  }
}

TEST(CliBadInputTest, BenchFlagsAreCheckedBeforeAnythingRuns) {
  const std::vector<std::string> bench = {DozeBinary(), "bench", "--model", Model(), "--backend", "cpu"};
  const std::pair<std::vector<std::string>, const char*> cases[] = {
      {{"--prompt-len", "0"}, "--prompt-len must be at least 1"},
      {{"--gen-len", "4"}, "--gen-len must be at least 5"},
      {{"--batch", "1,,2"}, R"(--batch: "" is not a positive integer)"},
      {{"--batch", "-3"}, R"(--batch: "-3" is not a positive integer)"},
      {{"--ttft-lens", "abc"}, R"(--ttft-lens: "abc" is not a positive integer)"},
      // Past the tiny model's context: the engine's refusal, not a failed check (an abort).
      {{"--prompt-len", "40000", "--gen-len", "8", "--ttft-lens", ""}, "exceeds the model's context"},
  };
  for (const auto& [flags, error] : cases) {
    std::vector<std::string> argv = bench;
    argv.insert(argv.end(), flags.begin(), flags.end());
    ExpectRefused({flags[0].c_str(), argv, error});
  }
  ExpectRefused({"bench-cold on no folder",
                 {DozeBinary(), "bench-cold", "--model", TestDataDir() + "/nowhere"},
                 "is not a directory"});
}

// A bad --tokenizer is found before anything is written: no half-made checkpoint is left behind.
TEST(CliBadInputTest, MakeModelChecksTheTokenizerFirst) {
  const std::string out = TestDataDir() + "/bad-input-make-model";
  std::filesystem::remove_all(out);
  ExpectRefused({"missing tokenizer",
                 {DozeBinary(), "make-model", "--preset", "tiny", "--out", out, "--tokenizer", out + ".json"},
                 "--tokenizer: "});
  EXPECT_FALSE(std::filesystem::exists(out));
}

// A tokenizer with ids past the model's vocabulary (Qwen's goes to 151668; this model has 151650 rows) is
// refused when the model loads, naming both: the worker used to start and then fail every text request.
TEST(CliBadInputTest, TokenizerWiderThanTheVocabularyIsRefusedAtLoad) {
  const std::string out = TestDataDir() + "/bad-input-narrow-vocab";
  const ProcessResult made = RunProcess({DozeBinary(), "make-model", "--preset", "tiny", "--hidden-size",
                                         "64", "--num-layers", "1", "--vocab-size", "151650", "--force",
                                         "--out", out, "--tokenizer", Model() + "/tokenizer.json"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::string input = WriteInput("bad-input-narrow-vocab.jsonl", R"({"prompt":"hello"})"
                                                                       "\n");
  ExpectRefused(
      {"generate",
       {DozeBinary(), "generate", "--model", out, "--backend", "cpu", "--input", input},
       "tokenizer.json: holds token ids up to 151668, past the model's vocab_size 151650 (config.json)"});
  ExpectRefused({"worker",
                 {Worker(), "--model", out, "--function", "f", "--listen", "unix:" + out + "/w.sock",
                  "--backend", "cpu"},
                 "past the model's vocab_size 151650"});
}

// A checkpoint whose weights hold a NaN (one bf16 of model.layers.0.mlp.up_proj.weight set to 0x7FC0 in
// the file make-model wrote) is refused at load, naming the tensor, rather than served as nonsense tokens.
TEST(CliBadInputTest, WeightsHoldingNaNAreRefusedAtLoad) {
  const std::string out = TestDataDir() + "/bad-input-nan-weights";
  const ProcessResult made =
      RunProcess({DozeBinary(), "make-model", "--preset", "tiny", "--hidden-size", "64", "--num-layers", "1",
                  "--force", "--out", out, "--tokenizer", Model() + "/tokenizer.json"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  std::fstream file(out + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
  uint64_t header_len = 0;
  file.read(reinterpret_cast<char*>(&header_len), 8);
  std::string header(header_len, '\0');
  file.read(header.data(), static_cast<std::streamsize>(header_len));
  const auto entry = nlohmann::json::parse(header)["model.layers.0.mlp.up_proj.weight"];
  ASSERT_EQ(entry["dtype"], "BF16");
  const uint64_t at =
      8 + header_len + entry["data_offsets"][0].get<uint64_t>() + 2 * (64 + 5);  // row 1, col 5
  const uint16_t nan_bits = 0x7FC0;
  file.seekp(static_cast<std::streamoff>(at));
  file.write(reinterpret_cast<const char*>(&nan_bits), 2);
  file.close();
  const std::string input = WriteInput("bad-input-nan-weights.jsonl", R"({"prompt":"hello"})"
                                                                      "\n");
  const char* error =
      "tensor model.layers.0.mlp.up_proj.weight holds 1 NaN or infinite value (the first at "
      "row 1, column 5): the checkpoint is damaged";
  ExpectRefused(
      {"generate", {DozeBinary(), "generate", "--model", out, "--backend", "cpu", "--input", input}, error});
  ExpectRefused({"worker",
                 {Worker(), "--model", out, "--function", "f", "--listen", "unix:" + out + "/w.sock",
                  "--backend", "cpu"},
                 error});
}

// make-model does not write into a folder that already holds files unless told to: what was there stays.
TEST(CliBadInputTest, MakeModelKeepsAFolderThatHoldsFiles) {
  const std::string out = TestDataDir() + "/bad-input-make-model-full";
  std::filesystem::remove_all(out);
  std::filesystem::create_directories(out);
  const std::string kept = WriteInput("bad-input-make-model-full/config.json", "{\"mine\": true}");
  const std::vector<std::string> make = {DozeBinary(), "make-model",   "--preset", "tiny",  "--hidden-size",
                                         "64",         "--num-layers", "1",        "--out", out};
  ExpectRefused({"a folder with files", make, "already holds files; pass --force"});
  std::ifstream in(kept);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()),
            "{\"mine\": true}");
  std::vector<std::string> forced = make;
  forced.push_back("--force");
  const ProcessResult result = RunProcess(forced);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(std::filesystem::is_regular_file(out + "/model.safetensors"));
  ExpectRefused({"a file as the folder",
                 {DozeBinary(), "make-model", "--preset", "tiny", "--out", kept},
                 "exists and is not a folder"});
}

// doze chat fed a session whose turn fails (a prompt past the context) says so and exits non-zero, after
// answering the turns that did not fail.
TEST(CliBadInputTest, ChatWithAFailedTurnExitsNonZero) {
  std::string too_long;
  for (int i = 0; i < 40000; ++i) too_long += "hello ";
  const ProcessResult result =
      RunProcess({DozeBinary(), "chat", "--model", Model(), "--backend", "cpu", "--max-tokens", "2"},
                 "hi\n" + too_long + "\nhi again\n");
  EXPECT_EQ(result.exit_code, 1) << result.err;
  EXPECT_THAT(result.err, HasSubstr("exceeds"));
  EXPECT_THAT(result.err, HasSubstr("1 of 3 turns failed"));
}

// doze simulate reads the whole gateway file: a misspelt key or an override naming no key is an error, not
// the defaults left in place unseen.
TEST(CliBadInputTest, SimulateRefusesKeysTheGatewayWouldRefuse) {
  const std::string trace = TestDataDir() + "/bad-input-trace.csv";
  ASSERT_EQ(RunProcess({DozeBinary(), "trace", "synth", "--profile", "office", "--days", "1", "--out", trace})
                .exit_code,
            0);
  const std::string config = SourceDir() + "/config/doze.yaml";
  const std::vector<std::string> simulate = {DozeBinary(), "simulate", "--config", config, "--trace", trace};
  EXPECT_EQ(RunProcess(simulate).exit_code, 0);
  std::vector<std::string> bogus = simulate;
  bogus.insert(bogus.end(), {"--policy-override", "idle_timeout=10m"});  // schedule.idle_timeout is meant
  ExpectRefused({"override naming no key", bogus, "idle_timeout: unknown key"});
  std::ifstream in(config);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t billing = text.find("\nbilling:");
  ASSERT_NE(billing, std::string::npos);
  text.replace(billing, 9, "\nbiling:");
  const std::string misspelt = WriteInput("bad-input-biling.yaml", text);
  ExpectRefused({"misspelt key",
                 {DozeBinary(), "simulate", "--config", misspelt, "--trace", trace},
                 "biling: unknown key"});
}

TEST(CliBadInputTest, WorkerListenAddressesAreChecked) {
  const std::vector<std::string> worker = {Worker(), "--model",   Model(), "--function",
                                           "f",      "--backend", "cpu",   "--listen"};
  const std::string not_socket = WriteInput("bad-input-not-a-socket", "x");
  // A socket a live server holds: a second worker would take its path over (gRPC removes the file first).
  const std::string live = "/tmp/doze-cli-bad-input-" + std::to_string(getpid()) + ".sock";
  unlink(live.c_str());
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, live.data(), live.size());
  ASSERT_EQ(bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  const std::pair<std::string, const char*> cases[] = {
      {"unix:", "no socket path"},
      {"unix:/tmp/" + std::string(120, 'x'), "longer than a unix socket"},
      {"unix:" + not_socket, "exists and is not a socket"},
      {"unix:" + live, "another process is serving on"},
      {"127.0.0.1:99999", "a port from 0 to 65535"},
      {"localhost", "expected unix:PATH or HOST:PORT"},
  };
  for (const auto& [listen, error] : cases) {
    std::vector<std::string> argv = worker;
    argv.push_back(listen);
    ExpectRefused({listen.c_str(), argv, error});
  }
  close(fd);
  unlink(live.c_str());
}

}  // namespace
}  // namespace doze::testing

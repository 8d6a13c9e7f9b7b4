// `doze generate` on the CPU backend against Hugging Face transformers (fp32, eager) goldens made on the same
// random checkpoints (tests/goldens/model, scripts/goldens/model_goldens.py): greedy tokens, top-10 logits
// and logsumexp of the last prompt position, prompt token counts (so the tokenizer and chat template agree
// with HF's too).
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/e2e/cli_process.h"

namespace doze::testing {
namespace {

using nlohmann::json;

constexpr double kLogitTolerance = 1e-3;

json ReadJson(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in);
}

std::vector<json> ParseLines(const std::string& text) {
  std::vector<json> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(json::parse(line));
  }
  return lines;
}

// The engine counters: the last line of stderr.
json Counters(const std::string& err) {
  std::string last;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] == '{') last = line;
  }
  return last.empty() ? json() : json::parse(last);
}

class GenerateGoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    golden_ = ReadJson(SourceDir() + "/tests/goldens/model/" + GetParam() + ".json");
    model_dir_ = std::string(std::getenv("DOZE_BUILD_DIR")) + "/models/" + GetParam();
    input_path_ = TestDataDir() + "/" + GetParam() + "-prompts.jsonl";
    std::ofstream input(input_path_);
    for (const json& record : golden_["records"]) input << record["input"].dump() << "\n";
  }

  // Runs every golden prompt through one `doze generate` call with `extra` flags.
  ProcessResult Generate(const std::vector<std::string>& extra) const {
    std::vector<std::string> argv = {DozeBinary(),   "generate",     "--model",   model_dir_,     "--backend",
                                     "cpu",          "--input",      input_path_, "--max-tokens", "32",
                                     "--ignore-eos", "--top-logits", "10"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunProcess(argv);
  }

  void ExpectMatchesGoldens(const ProcessResult& result) const {
    ASSERT_EQ(result.exit_code, 0) << result.err;
    std::vector<json> outputs = ParseLines(result.out);
    const json& records = golden_["records"];
    ASSERT_EQ(outputs.size(), records.size());
    for (size_t i = 0; i < records.size(); ++i) {
      SCOPED_TRACE("prompt " + std::to_string(i) + ": " + records[i]["input"].dump());
      ExpectRecord(records[i], outputs[i]);
    }
  }

  static void ExpectRecord(const json& golden, const json& output) {
    EXPECT_EQ(output["usage"]["prompt_tokens"], golden["prompt_ids"].size());
    EXPECT_EQ(output["ids"], golden["greedy_ids"]);
    EXPECT_EQ(output["finish_reason"], "length");
    const json& want = golden["top_logits"];
    const json& have = output["top_logits"];
    ASSERT_EQ(have["ids"].size(), 10u);
    for (size_t k = 0; k < 10; ++k) {
      // Near-equal logits may swap places; compare each golden id's logit where it landed.
      EXPECT_NEAR(have["logits"][k].get<double>(), want["logits"][k].get<double>(), kLogitTolerance)
          << "rank " << k;
    }
    EXPECT_EQ(have["ids"][0], want["ids"][0]);
    EXPECT_NEAR(have["logsumexp"].get<double>(), want["logsumexp"].get<double>(), kLogitTolerance);
  }

  json golden_;
  std::string model_dir_;
  std::string input_path_;
};

TEST_P(GenerateGoldenTest, BatchedGreedyAndLogitsMatchTransformers) { ExpectMatchesGoldens(Generate({})); }

TEST_P(GenerateGoldenTest, OneAtATimeMatchesTransformers) {
  ExpectMatchesGoldens(Generate({"--max-num-seqs", "1"}));
}

TEST_P(GenerateGoldenTest, PreemptionUnderATinyKvPoolKeepsOutputsIdentical) {
  // 16 blocks of 16 tokens: the longest prompt (130 tokens + 32 new) needs 11, so ten prompts must preempt.
  ProcessResult result = Generate({"--kv-cache-tokens", "256"});
  ExpectMatchesGoldens(result);
  EXPECT_GT(Counters(result.err)["preemptions"].get<int>(), 0) << result.err;
}

TEST_P(GenerateGoldenTest, SmallPrefillChunksKeepOutputsIdentical) {
  ExpectMatchesGoldens(Generate({"--max-num-batched-tokens", "24"}));
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, GenerateGoldenTest,
                         ::testing::Values("tiny-tied-gqa2", "tiny-untied-hd128-mha",
                                           "tiny-untied-gqa3-wide"));

}  // namespace
}  // namespace doze::testing

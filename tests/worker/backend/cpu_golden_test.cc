// The CPU backend against Hugging Face transformers (fp32, eager) on the random checkpoints of
// tests/goldens/model/checkpoints.txt: top-10 logits and logsumexp after each prompt, and the greedy
// continuation.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "worker/backend/cpu/cpu_model_runner.h"
#include "worker/model/checkpoint.h"
#include "worker/model/random_checkpoint.h"

namespace doze {
namespace {

constexpr double kLogitTolerance = 1e-3;
// Below this margin between HF's best and second-best logit, fp32 rounding may pick either: the continuation
// is compared up to the first such step only.
constexpr double kTieMargin = 2e-3;

std::filesystem::path GoldenDir() {
  const char* source = std::getenv("DOZE_SOURCE_DIR");
  return std::filesystem::path(source ? source : ".") / "tests/goldens/model";
}

// checkpoints.txt: NAME then `doze make-model` arguments, as RandomCheckpointOptions.
std::map<std::string, RandomCheckpointOptions> CheckpointOptions() {
  std::map<std::string, RandomCheckpointOptions> result;
  std::ifstream in(GoldenDir() / "checkpoints.txt");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    std::string name, flag;
    words >> name;
    RandomCheckpointOptions options;
    std::map<std::string, std::optional<int>*> overrides = {
        {"--hidden-size", &options.hidden_size}, {"--num-layers", &options.num_layers},
        {"--num-heads", &options.num_heads},     {"--num-kv-heads", &options.num_kv_heads},
        {"--head-dim", &options.head_dim},       {"--intermediate-size", &options.intermediate_size},
        {"--vocab-size", &options.vocab_size}};
    while (words >> flag) {
      std::string value;
      if (flag == "--no-tie") {
        options.tie_word_embeddings = false;
      } else if (flag == "--preset") {
        words >> options.preset;
      } else if (flag == "--seed") {
        words >> options.seed;
      } else if (overrides.count(flag) && words >> value) {
        *overrides[flag] = std::stoi(value);
      } else {
        ADD_FAILURE() << "checkpoints.txt: unknown argument " << flag;
      }
    }
    result[name] = options;
  }
  return result;
}

// One sequence fed through the runner: a prefill, then one token per step.
class Generation {
 public:
  explicit Generation(CpuModelRunner* runner) : runner_(runner) {}

  // Appends `tokens` and returns the logits after the last of them.
  std::vector<float> Feed(const std::vector<int32_t>& tokens) {
    BatchMetadata batch;
    const int bs = runner_->block_size();
    for (size_t i = 0; i < tokens.size(); ++i, ++len_) {
      batch.token_ids.push_back(tokens[i]);
      batch.positions.push_back(len_);
      batch.slot_mapping.push_back(len_);  // block b is pool block b
    }
    batch.query_start_loc = {0, static_cast<int32_t>(tokens.size())};
    batch.seq_lens = {len_};
    batch.max_blocks_per_seq = runner_->num_kv_blocks();
    for (int b = 0; b < runner_->num_kv_blocks(); ++b) batch.block_tables.push_back(b * bs < len_ ? b : -1);
    batch.logits_indices = {static_cast<int32_t>(tokens.size()) - 1};
    auto logits = runner_->Forward(batch);
    EXPECT_TRUE(logits.ok()) << logits.status();
    if (!logits.ok()) return {};
    return std::vector<float>(logits->row(0), logits->row(0) + logits->vocab_size);
  }

 private:
  CpuModelRunner* runner_;
  int32_t len_ = 0;
};

double LogSumExp(const std::vector<float>& logits) {
  const double max_logit = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float logit : logits) sum += std::exp(logit - max_logit);
  return max_logit + std::log(sum);
}

void CheckRecord(CpuModelRunner* runner, const nlohmann::json& record, const std::string& what) {
  Generation generation(runner);
  std::vector<float> logits = generation.Feed(record["prompt_ids"].get<std::vector<int32_t>>());
  ASSERT_FALSE(logits.empty()) << what;
  const auto& top = record["top_logits"];
  for (size_t i = 0; i < top["ids"].size(); ++i) {
    const int id = top["ids"][i];
    EXPECT_NEAR(logits[id], top["logits"][i].get<double>(), kLogitTolerance)
        << what << " top-" << i << " id " << id;
  }
  EXPECT_NEAR(LogSumExp(logits), top["logsumexp"].get<double>(), kLogitTolerance) << what;
  const auto& greedy = record["greedy_ids"];
  const auto& margins = record["margins"];
  for (size_t step = 0; step < greedy.size(); ++step) {
    const int ours = static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (margins[step].get<double>() < kTieMargin && ours != greedy[step].get<int>()) return;
    ASSERT_EQ(ours, greedy[step].get<int>()) << what << " greedy step " << step;
    logits = generation.Feed({ours});
  }
}

TEST(CpuGoldenTest, MatchesTransformersOnEveryGoldenCheckpoint) {
  const std::map<std::string, RandomCheckpointOptions> checkpoints = CheckpointOptions();
  ASSERT_FALSE(checkpoints.empty()) << "no checkpoints.txt under " << GoldenDir();
  for (const auto& [name, base_options] : checkpoints) {
    std::ifstream in(GoldenDir() / (name + ".json"));
    if (!in) continue;  // a checkpoint listed before its golden was made
    const nlohmann::json golden = nlohmann::json::parse(in);
    RandomCheckpointOptions options = base_options;
    options.out_dir = ::testing::TempDir() + "/doze_cpu_golden_" + name;
    ASSERT_TRUE(WriteRandomCheckpoint(options).ok()) << name;
    auto checkpoint = Checkpoint::Load(options.out_dir);
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
    CpuModelRunner runner(**checkpoint, CpuRunnerOptions{/*num_kv_blocks=*/64, /*block_size=*/16});
    for (size_t r = 0; r < golden["records"].size(); ++r) {
      CheckRecord(&runner, golden["records"][r], name + " record " + std::to_string(r));
    }
    std::filesystem::remove_all(options.out_dir);
  }
}

}  // namespace
}  // namespace doze

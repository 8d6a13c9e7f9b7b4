// doze_engine_step_bench: the engine's own host time per decode step, with a model runner that does no model
// work. Whatever a step costs here is added to every GPU step (the GPU waits for it), on top of the CUDA
// runner's own host-side preparation, which this bench does not include. The floor is 0.
//
// usage: doze_engine_step_bench [--batch 1,8,64] [--prompt-len 512] [--gen-len 256] [--rounds 5]
//                               [--kv-blocks 65536] [--tokenizer PATH] [--penalties 1]
// --penalties 1 gives every request presence, frequency and repetition penalties (rows carry logit edits).
//
// Requests are doze bench's: random prompts of prompt-len ids, greedy, ignore_eos, gen-len tokens,
// detokenized with the real Qwen tokenizer at Qwen2.5's vocabulary (151,936). The runner samples on the
// "device" (as the CUDA backend does for greedy and temperature rows) and answers each row with a
// pseudo-random token at once. A step is timed from the Step call until its outputs are dropped, in phases:
// before the runner is called (schedule, build the batch, device rows), the runner call (the fake's own few
// ns per row), after it (scheduler bookkeeping, post-processing: detokenization, stop checks, output objects)
// and dropping the outputs (the caller's, but paid every step). Decode steps are those after every prompt has
// its first token; each batch size runs one untimed round, then `rounds` timed ones. Prints one JSON line,
// then a table.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "worker/common/logging.h"
#include "worker/engine/engine.h"
#include "worker/engine/tokenizer_text_decoder.h"
#include "worker/tokenizer/tokenizer.h"

namespace doze {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kVocabSize = 151936;          // Qwen2.5's embedding rows
constexpr int32_t kNumTextTokens = 151643;  // ids below the first special token, as doze bench draws prompts
constexpr int kBlockSize = 16;

double Micros(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::micro>(to - from).count();
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A runner with Qwen2.5's vocabulary and no model: ForwardAndSample answers each row with a token drawn from
// its (seed, step) at once, Forward returns one static logits buffer. Records when the engine called it.
class NoModelRunner : public ModelRunner {
 public:
  explicit NoModelRunner(int num_kv_blocks) : num_kv_blocks_(num_kv_blocks) {
    config_.vocab_size = kVocabSize;
    config_.max_position_embeddings = 32768;
  }

  const ModelConfig& config() const override { return config_; }
  int block_size() const override { return kBlockSize; }
  int num_kv_blocks() const override { return num_kv_blocks_; }

  absl::StatusOr<LogitsView> Forward(const BatchMetadata& batch) override {
    entered_ = Clock::now();
    if (static_cast<int>(logits_.size()) < batch.num_logits() * kVocabSize) {
      logits_.assign(static_cast<size_t>(batch.num_logits()) * kVocabSize, 0.0f);
    }
    left_ = Clock::now();
    return LogitsView{logits_.data(), batch.num_logits(), kVocabSize};
  }

  bool SupportsDeviceSampling() const override { return true; }

  absl::StatusOr<std::vector<int32_t>> ForwardAndSample(const BatchMetadata& /*batch*/,
                                                        absl::Span<const DeviceSamplingRow> rows) override {
    entered_ = Clock::now();
    std::vector<int32_t> tokens(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      tokens[i] =
          static_cast<int32_t>(SplitMix64(rows[i].seed * 0x100000001b3ull + rows[i].step) % kNumTextTokens);
    }
    left_ = Clock::now();
    return tokens;
  }

  Clock::time_point entered() const { return entered_; }
  Clock::time_point left() const { return left_; }

 private:
  ModelConfig config_;
  int num_kv_blocks_;
  std::vector<float> logits_;
  Clock::time_point entered_;
  Clock::time_point left_;
};

struct Flags {
  std::vector<int> batches = {1, 8, 64};
  int prompt_len = 512;
  int gen_len = 256;
  int rounds = 5;
  int kv_blocks = 65536;
  bool penalties = false;  // presence, frequency and repetition penalties: rows carry logit edits
  std::string tokenizer = DOZE_DEFAULT_TOKENIZER_DIR;
};

Flags ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--batch") {
      flags.batches.clear();
      for (absl::string_view part : absl::StrSplit(value, ',')) {
        int batch = 0;
        if (absl::SimpleAtoi(part, &batch) && batch > 0) flags.batches.push_back(batch);
      }
    }
    if (flag == "--prompt-len") flags.prompt_len = std::atoi(value.c_str());
    if (flag == "--gen-len") flags.gen_len = std::atoi(value.c_str());
    if (flag == "--rounds") flags.rounds = std::atoi(value.c_str());
    if (flag == "--kv-blocks") flags.kv_blocks = std::atoi(value.c_str());
    if (flag == "--tokenizer") flags.tokenizer = value;
    if (flag == "--penalties") flags.penalties = value == "1" || value == "true";
  }
  if (flags.tokenizer.size() < 5 || flags.tokenizer.substr(flags.tokenizer.size() - 5) != ".json") {
    flags.tokenizer += "/tokenizer.json";
  }
  return flags;
}

// Microseconds of one decode step, by phase.
struct StepTimes {
  double before_runner = 0;  // Schedule, BuildBatch, DeviceRows
  double runner = 0;         // the fake runner call
  double after_runner = 0;   // OnStepComputed, PostProcess
  double drop_outputs = 0;   // destroying the step's RequestOutputs
  double total() const { return before_runner + runner + after_runner + drop_outputs; }
};

std::vector<int32_t> RandomPrompt(std::mt19937& rng, int length) {
  std::uniform_int_distribution<int32_t> token(0, kNumTextTokens - 1);
  std::vector<int32_t> ids(length);
  for (int32_t& id : ids) id = token(rng);
  return ids;
}

// One round: `batch` requests together; returns the times of the steps after every prompt's first token.
std::vector<StepTimes> RunRound(Engine& engine, const NoModelRunner& runner, std::mt19937& rng, int batch,
                                const Flags& flags) {
  SamplingParams params;
  params.temperature = 0.0f;
  params.max_tokens = flags.gen_len;
  params.ignore_eos = true;
  if (flags.penalties) {
    params.presence_penalty = 0.5f;
    params.frequency_penalty = 0.3f;
    params.repetition_penalty = 1.1f;
  }
  for (int i = 0; i < batch; ++i)
    DOZE_CHECK(engine.AddRequest(RandomPrompt(rng, flags.prompt_len), params).ok());
  std::vector<StepTimes> steps;
  steps.reserve(flags.gen_len);
  int first_tokens = 0;
  while (engine.HasUnfinished()) {
    const Clock::time_point start = Clock::now();
    std::vector<RequestOutput> outputs = engine.Step();
    const Clock::time_point stepped = Clock::now();
    const bool decode = first_tokens == batch && static_cast<int>(outputs.size()) == batch;
    for (const RequestOutput& out : outputs) first_tokens += out.usage.completion_tokens == 1;
    outputs = {};
    const Clock::time_point dropped = Clock::now();
    if (decode) {
      steps.push_back({Micros(start, runner.entered()), Micros(runner.entered(), runner.left()),
                       Micros(runner.left(), stepped), Micros(stepped, dropped)});
    }
  }
  return steps;
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

}  // namespace
}  // namespace doze

int main(int argc, char** argv) {
  using doze::StepTimes;
  using nlohmann::json;
  const doze::Flags flags = doze::ParseFlags(argc, argv);
  auto tokenizer = doze::Tokenizer::FromFile(flags.tokenizer);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "tokenizer %s: %s\n", flags.tokenizer.c_str(),
                 std::string(tokenizer.status().message()).c_str());
    return 1;
  }
  const doze::TokenizerTextDecoderFactory decoders(tokenizer->get());
  doze::NoModelRunner runner(flags.kv_blocks);
  doze::EngineConfig config;
  config.max_num_seqs = *std::max_element(flags.batches.begin(), flags.batches.end());
  config.eos_token_ids = {151645, 151643};
  config.seed = 1;
  doze::Engine engine(&runner, &decoders, config);
  std::mt19937 rng(1234);

  json report = {{"prompt_len", flags.prompt_len},
                 {"gen_len", flags.gen_len},
                 {"rounds", flags.rounds},
                 {"vocab_size", doze::kVocabSize},
                 {"decode", json::array()}};
  std::vector<std::string> table;
  for (int batch : flags.batches) {
    doze::RunRound(engine, runner, rng, batch, flags);  // warm-up: allocations, caches
    std::vector<StepTimes> steps;
    std::vector<double> round_means;
    for (int round = 0; round < flags.rounds; ++round) {
      std::vector<StepTimes> times = doze::RunRound(engine, runner, rng, batch, flags);
      double sum = 0;
      for (const StepTimes& t : times) sum += t.total();
      round_means.push_back(times.empty() ? 0 : sum / times.size());
      steps.insert(steps.end(), times.begin(), times.end());
    }
    StepTimes mean;
    std::vector<double> totals;
    for (const StepTimes& t : steps) {
      mean.before_runner += t.before_runner / steps.size();
      mean.runner += t.runner / steps.size();
      mean.after_runner += t.after_runner / steps.size();
      mean.drop_outputs += t.drop_outputs / steps.size();
      totals.push_back(t.total());
    }
    const double best_round = *std::min_element(round_means.begin(), round_means.end());
    const double median = doze::Median(totals);
    report["decode"].push_back({{"batch", batch},
                                {"decode_steps", steps.size()},
                                {"step_us_mean", mean.total()},
                                {"step_us_median", median},
                                {"step_us_best_round", best_round},
                                {"per_seq_us_mean", mean.total() / batch},
                                {"before_runner_us", mean.before_runner},
                                {"runner_us", mean.runner},
                                {"after_runner_us", mean.after_runner},
                                {"drop_outputs_us", mean.drop_outputs}});
    char line[256];
    std::snprintf(line, sizeof(line), "%-6d %10.2f %10.2f %10.2f %10.3f %10.2f %10.2f %10.2f %10.2f", batch,
                  mean.total(), median, best_round, mean.total() / batch, mean.before_runner, mean.runner,
                  mean.after_runner, mean.drop_outputs);
    table.push_back(line);
  }
  std::printf("%s\n", report.dump().c_str());
  std::printf("host microseconds per decode step, added to every GPU step (floor 0)\n");
  std::printf("%-6s %10s %10s %10s %10s %10s %10s %10s %10s\n", "batch", "mean", "median", "best rnd",
              "per seq", "pre-run", "runner", "post-run", "drop out");
  for (const std::string& line : table) std::printf("%s\n", line.c_str());
  return 0;
}

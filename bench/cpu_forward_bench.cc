// CPU backend forward throughput: decode at batch 1 and batch 8, and a 128-token prefill. Prints one JSON
// line, then a table.
//
// usage: doze_cpu_forward_bench --model DIR [--threads N] [--steps N] [--prefill N] [--batch N]
// Decode steps feed random token ids after a 16-token prompt per sequence; their cost does not depend on
// which tokens they are. Each figure is the best of a few timed repetitions, so a burst of other work on a
// shared machine shows as noise in the repetitions, not in the figure.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "worker/backend/cpu/cpu_model_runner.h"
#include "worker/model/checkpoint.h"

namespace {

constexpr int kPromptLen = 16;
constexpr int kRepetitions = 3;

struct Flags {
  std::string model;
  int threads = 0;
  int steps = 8;
  int prefill = 128;
  int batch = 8;
};

Flags ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--model") flags.model = argv[i + 1];
    if (flag == "--threads") flags.threads = std::atoi(argv[i + 1]);
    if (flag == "--steps") flags.steps = std::atoi(argv[i + 1]);
    if (flag == "--prefill") flags.prefill = std::atoi(argv[i + 1]);
    if (flag == "--batch") flags.batch = std::atoi(argv[i + 1]);
  }
  return flags;
}

// Sequences laid out in the KV pool one after another, each owning `blocks_per_seq` contiguous blocks.
class Sequences {
 public:
  Sequences(int count, int blocks_per_seq, int block_size, int vocab_size)
      : lens_(count, 0), blocks_per_seq_(blocks_per_seq), block_size_(block_size), vocab_size_(vocab_size) {}

  // One step that appends `num_new` random tokens to every sequence; logits of each sequence's last row.
  doze::BatchMetadata Step(int num_new) {
    doze::BatchMetadata batch;
    batch.max_blocks_per_seq = blocks_per_seq_;
    batch.query_start_loc.push_back(0);
    for (size_t s = 0; s < lens_.size(); ++s) {
      for (int i = 0; i < num_new; ++i) {
        const int position = lens_[s] + i;
        const int block = static_cast<int>(s) * blocks_per_seq_ + position / block_size_;
        batch.token_ids.push_back(static_cast<int32_t>(rng_() % vocab_size_));
        batch.positions.push_back(position);
        batch.slot_mapping.push_back(block * block_size_ + position % block_size_);
      }
      lens_[s] += num_new;
      batch.query_start_loc.push_back(batch.num_tokens());
      batch.seq_lens.push_back(lens_[s]);
      batch.logits_indices.push_back(batch.num_tokens() - 1);
      for (int b = 0; b < blocks_per_seq_; ++b)
        batch.block_tables.push_back(static_cast<int>(s) * blocks_per_seq_ + b);
    }
    return batch;
  }

 private:
  std::vector<int> lens_;
  int blocks_per_seq_;
  int block_size_;
  int vocab_size_;
  std::mt19937 rng_{7};
};

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void RunOrDie(doze::CpuModelRunner& runner, const doze::BatchMetadata& batch) {
  auto logits = runner.Forward(batch);
  if (!logits.ok()) {
    std::fprintf(stderr, "Forward: %s\n", std::string(logits.status().message()).c_str());
    std::exit(1);
  }
}

// Tokens per second of `steps` decode steps of `batch` sequences after a short prompt: the best repetition.
double DecodeTokensPerSecond(doze::CpuModelRunner& runner, int batch, int steps) {
  double best = 0;
  for (int rep = 0; rep < kRepetitions; ++rep) {
    const int blocks_per_seq = (kPromptLen + steps + runner.block_size() - 1) / runner.block_size();
    Sequences seqs(batch, blocks_per_seq, runner.block_size(), runner.config().vocab_size);
    RunOrDie(runner, seqs.Step(kPromptLen));
    const auto start = std::chrono::steady_clock::now();
    for (int step = 0; step < steps; ++step) RunOrDie(runner, seqs.Step(1));
    best = std::max(best, static_cast<double>(batch) * steps / Seconds(start));
  }
  return best;
}

// Tokens per second of one prefill of `tokens` tokens: the best repetition.
double PrefillTokensPerSecond(doze::CpuModelRunner& runner, int tokens) {
  double best = 0;
  for (int rep = 0; rep < kRepetitions; ++rep) {
    Sequences seqs(1, (tokens + runner.block_size() - 1) / runner.block_size(), runner.block_size(),
                   runner.config().vocab_size);
    const auto start = std::chrono::steady_clock::now();
    RunOrDie(runner, seqs.Step(tokens));
    best = std::max(best, tokens / Seconds(start));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  if (flags.model.empty()) {
    std::fprintf(
        stderr,
        "usage: doze_cpu_forward_bench --model DIR [--threads N] [--steps N] [--prefill N] [--batch N]\n");
    return 2;
  }
  auto checkpoint = doze::Checkpoint::Load(flags.model);
  if (!checkpoint.ok()) {
    std::fprintf(stderr, "%s\n", std::string(checkpoint.status().message()).c_str());
    return 1;
  }
  const int block_size = 16;
  const int context = std::max(flags.prefill, kPromptLen + flags.steps);
  const int num_kv_blocks = std::max(flags.batch, 1) * ((context + block_size - 1) / block_size);
  doze::CpuModelRunner runner(**checkpoint, {num_kv_blocks, block_size, flags.threads});
  const double weight_gb = (*checkpoint)->weight_bytes() / 1e9;

  RunOrDie(runner, Sequences(1, 2, block_size, runner.config().vocab_size).Step(1));  // page the weights in
  const double decode1 = DecodeTokensPerSecond(runner, 1, flags.steps);
  const double decode_batch = DecodeTokensPerSecond(runner, flags.batch, flags.steps);
  const double prefill = PrefillTokensPerSecond(runner, flags.prefill);

  std::printf(
      "{\"bench\":\"cpu_forward\",\"model\":\"%s\",\"weight_gb\":%.3f,\"threads\":%d,\"decode_b1_tokens_per_"
      "s\":%.2f,"
      "\"decode_b1_weight_gb_per_s\":%.2f,\"decode_b%d_tokens_per_s\":%.2f,\"prefill_%d_tokens_per_s\":%.2f}"
      "\n\n",
      flags.model.c_str(), weight_gb, flags.threads, decode1, decode1 * weight_gb, flags.batch, decode_batch,
      flags.prefill, prefill);
  std::printf("%-20s %12s %12s\n", "case", "tokens/s", "ms/step");
  std::printf("%-20s %12.2f %12.1f\n", "decode batch 1", decode1, 1e3 / decode1);
  std::printf("%-20s %12.2f %12.1f\n", ("decode batch " + std::to_string(flags.batch)).c_str(), decode_batch,
              1e3 * flags.batch / decode_batch);
  std::printf("%-20s %12.2f %12.1f\n", ("prefill " + std::to_string(flags.prefill)).c_str(), prefill,
              1e3 * flags.prefill / prefill);
  return 0;
}

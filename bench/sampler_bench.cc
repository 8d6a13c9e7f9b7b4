// doze_sampler_bench: the host Sampler on one row of Qwen2.5's vocabulary (151,936 logits, normal with
// standard deviation 3, about what the model gives), per sampling setting. Microseconds per row.
//
// usage: doze_sampler_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "worker/engine/sampler.h"
#include "worker/engine/sequence.h"

namespace doze {
namespace {

constexpr int kVocab = 151936;
constexpr int kRows = 8;  // rows rotated through, so one row's cache state does not flatter the figure

std::vector<std::vector<float>> RandomRows() {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.f, 3.f);
  std::vector<std::vector<float>> rows(kRows, std::vector<float>(kVocab));
  for (auto& row : rows) {
    for (float& x : row) x = dist(rng);
  }
  return rows;
}

void RunSampler(benchmark::State& state, SamplingParams params) {
  static const std::vector<std::vector<float>> rows = RandomRows();
  const Sequence seq(1, {1, 2, 3}, params, 42);
  const Sampler sampler;
  int i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(sampler.Sample(rows[i++ % kRows], seq).token_id);
  }
}

SamplingParams Params(float temperature, int top_k, float top_p, float min_p) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  return p;
}

void BM_Greedy(benchmark::State& s) { RunSampler(s, Params(0.f, 0, 1.f, 0.f)); }
void BM_Temperature(benchmark::State& s) { RunSampler(s, Params(0.7f, 0, 1.f, 0.f)); }
void BM_TopK50(benchmark::State& s) { RunSampler(s, Params(0.7f, 50, 1.f, 0.f)); }
void BM_TopP09(benchmark::State& s) { RunSampler(s, Params(0.7f, 0, 0.9f, 0.f)); }
void BM_MinP005(benchmark::State& s) { RunSampler(s, Params(0.7f, 0, 1.f, 0.05f)); }
void BM_TopK50TopP09(benchmark::State& s) { RunSampler(s, Params(0.7f, 50, 0.9f, 0.f)); }
void BM_TopK1000TopP095(benchmark::State& s) { RunSampler(s, Params(1.f, 1000, 0.95f, 0.f)); }
void BM_RepetitionPenaltyGreedy(benchmark::State& s) {
  SamplingParams p = Params(0.f, 0, 1.f, 0.f);
  p.repetition_penalty = 1.1f;
  RunSampler(s, p);
}

BENCHMARK(BM_Greedy)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Temperature)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TopK50)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TopP09)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MinP005)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TopK50TopP09)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TopK1000TopP095)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RepetitionPenaltyGreedy)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace doze

BENCHMARK_MAIN();

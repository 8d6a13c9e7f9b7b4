// ArgmaxRows and SampleRows against the host Sampler's functions (worker/engine/logits_processor.h), which
// define the tokens the engine expects: the same draw, SeededUniform(seed, step), on both sides.
#include "kernels/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "tests/kernels/kernel_test_util.h"
#include "worker/engine/logit_edit.h"
#include "worker/engine/logits_processor.h"

namespace doze::kernels {
namespace {

using testing::DeviceArray;

// Normal logits with a standard deviation of 3; `integral` rounds them, so ties are everywhere.
std::vector<float> RandomLogits(int rows, int vocab, bool integral, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.f, 3.f);
  std::vector<float> logits(static_cast<size_t>(rows) * vocab);
  for (float& x : logits) x = integral ? std::round(dist(rng)) : dist(rng);
  return logits;
}

struct RowSetting {
  float temperature;
  int top_k;
  float top_p;
  float min_p;
};

// Row r gets one of several settings: greedy, plain temperature, top-k, top-p, min-p and mixes.
RowSetting SettingOfRow(int r) {
  static const RowSetting kSettings[] = {
      {0.f, 0, 1.f, 0.f},      {1.f, 0, 1.f, 0.f},      {0.7f, 40, 1.f, 0.f},    {1.f, 0, 0.9f, 0.f},
      {1.3f, 0, 1.f, 0.05f},   {0.8f, 50, 0.8f, 0.02f}, {1.f, 1, 1.f, 0.f},      {0.6f, 0, 0.5f, 0.f},
      {1.f, 2000, 0.95f, 0.f}, {0.9f, 7, 1.f, 0.3f},    {1.1f, 0, 0.99f, 0.01f},
  };
  return kSettings[r % 11];
}

// What the host Sampler draws for a row without penalties.
int32_t HostSample(const float* row, int vocab, const RowSetting& s, uint64_t seed, uint64_t step) {
  std::vector<float> logits(row, row + vocab);
  if (s.temperature == 0.f) return Argmax(logits);
  absl::Span<float> span = absl::MakeSpan(logits);
  ApplyTemperature(s.temperature, span);
  MaskTopK(s.top_k, span);
  MaskTopP(s.top_p, span);
  MaskMinP(s.min_p, span);
  return SampleFromLogits(span, SeededUniform(seed, step));
}

// ArgmaxRows on the GPU.
std::vector<int32_t> GpuArgmax(const std::vector<float>& logits, int rows, int vocab) {
  DeviceArray<float> d_logits(logits);
  DeviceArray<int32_t> d_out(rows);
  DeviceArray<char> d_workspace(SamplingWorkspaceBytes(rows));
  d_out.Poison();
  ArgmaxRows(d_logits.get(), d_out.get(), d_workspace.get(), rows, vocab, nullptr);
  return d_out.Download();
}

class SamplingTest : public ::testing::TestWithParam<int> {};

TEST_P(SamplingTest, ArgmaxMatchesTheHost) {
  DOZE_SKIP_WITHOUT_GPU();
  const int rows = GetParam();
  for (int vocab : {151936, 1000}) {
    std::mt19937 rng(rows + vocab);
    const std::vector<float> logits = RandomLogits(rows, vocab, vocab == 1000, rng);
    const std::vector<int32_t> got = GpuArgmax(logits, rows, vocab);
    for (int r = 0; r < rows; ++r) {
      EXPECT_EQ(got[r], Argmax(absl::MakeConstSpan(logits.data() + static_cast<size_t>(r) * vocab, vocab)))
          << "row " << r;
    }
  }
}

// Rows with infinities and NaNs: the host's choice (the lowest id of the maximum; a NaN never wins, a row of
// NaNs gets token 0), a NaN first in its slice or inside one, never an id past the vocabulary.
TEST(SamplingArgmaxTest, NonFiniteRowsMatchTheHost) {
  DOZE_SKIP_WITHOUT_GPU();
  const int rows = 5, vocab = 151936;
  std::mt19937 rng(5);
  std::vector<float> logits = RandomLogits(rows, vocab, false, rng);
  auto at = [&](int r, int i) -> float& { return logits[static_cast<size_t>(r) * vocab + i]; };
  const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf("");
  at(0, 70000) = nan;
  at(0, 0) = nan;
  at(0, 50) = inf;
  at(1, 9000) = inf;
  at(1, 5000) = inf;
  std::fill_n(&at(2, 0), vocab, -inf);
  std::fill_n(&at(3, 0), vocab, nan);
  std::fill_n(&at(4, 0), vocab, nan);
  at(4, 123456) = -inf;
  const std::vector<int32_t> got = GpuArgmax(logits, rows, vocab);
  const std::vector<int32_t> want{50, 5000, 0, 0, 123456};
  for (int r = 0; r < rows; ++r) {
    EXPECT_EQ(got[r], want[r]) << "row " << r;
    EXPECT_EQ(got[r], Argmax(absl::MakeConstSpan(logits.data() + static_cast<size_t>(r) * vocab, vocab)))
        << "row " << r << " against the host";
  }
}

// Samples every row twice (the second run must repeat the first) and compares with the host. Without
// `slice_hint` every sampled row is drawn in one block (SampleRows' fallback) instead of over the row's
// slices.
void ExpectSameAsHost(int rows, int vocab, bool integral, uint64_t step, bool slice_hint = true) {
  std::mt19937 rng(rows * 17 + vocab + (integral ? 1 : 0));
  const std::vector<float> logits = RandomLogits(rows, vocab, integral, rng);
  std::vector<float> temperature, top_p, min_p;
  std::vector<int32_t> top_k;
  std::vector<uint64_t> seeds, steps;
  for (int r = 0; r < rows; ++r) {
    const RowSetting s = SettingOfRow(r);
    temperature.push_back(s.temperature);
    top_k.push_back(s.top_k);
    top_p.push_back(s.top_p);
    min_p.push_back(s.min_p);
    seeds.push_back(0x1234567ull * (r + 1));
    steps.push_back(step + r);
  }
  DeviceArray<float> d_logits(logits), d_temp(temperature), d_top_p(top_p), d_min_p(min_p);
  DeviceArray<int32_t> d_top_k(top_k), d_out(rows);
  DeviceArray<uint64_t> d_seeds(seeds), d_steps(steps);
  DeviceArray<char> d_workspace(SamplingWorkspaceBytes(rows));
  SamplingParams params{d_temp.get(),  d_top_k.get(), d_top_p.get(),
                        d_min_p.get(), d_seeds.get(), d_steps.get()};
  params.any_temperature_alone = params.any_filtered = slice_hint;
  d_out.Poison();
  SampleRows(d_logits.get(), params, d_out.get(), d_workspace.get(), rows, vocab, nullptr);
  const std::vector<int32_t> first = d_out.Download();
  d_out.Poison();
  SampleRows(d_logits.get(), params, d_out.get(), d_workspace.get(), rows, vocab, nullptr);
  EXPECT_EQ(d_out.Download(), first);
  for (int r = 0; r < rows; ++r) {
    const float* row = logits.data() + static_cast<size_t>(r) * vocab;
    EXPECT_EQ(first[r], HostSample(row, vocab, SettingOfRow(r), seeds[r], steps[r]))
        << "row " << r << " setting " << r % 11;
  }
}

TEST_P(SamplingTest, SampleMatchesTheHostAndIsReproducible) {
  DOZE_SKIP_WITHOUT_GPU();
  for (uint64_t step : {0, 5, 1000}) ExpectSameAsHost(GetParam(), 151936, false, step);
}

TEST_P(SamplingTest, TiesAtEveryCutFollowTheHost) {
  DOZE_SKIP_WITHOUT_GPU();
  for (uint64_t step : {0, 9}) {
    ExpectSameAsHost(GetParam(), 151936, true, step);
    ExpectSameAsHost(GetParam(), 999, true, step);
  }
}

// Every sampled row drawn in one block (no pass over the row's slices).
TEST_P(SamplingTest, WithoutTheSlicePassesMatchesTheHost) {
  DOZE_SKIP_WITHOUT_GPU();
  ExpectSameAsHost(GetParam(), 151936, false, 3, /*slice_hint=*/false);
  ExpectSameAsHost(GetParam(), 999, true, 4, /*slice_hint=*/false);
}

// Every row sampled with its temperature alone (the slices' sums, then a walk of one slice), at temperatures
// from sharp to flat and vocabularies whose slices end unevenly.
TEST(SamplingTemperatureTest, EveryRowAtItsTemperatureMatchesTheHost) {
  DOZE_SKIP_WITHOUT_GPU();
  const int rows = 40;
  for (int vocab : {151936, 4099, 70}) {
    std::mt19937 rng(vocab);
    const std::vector<float> logits = RandomLogits(rows, vocab, false, rng);
    std::vector<float> temperature(rows), top_p(rows, 1.f), min_p(rows, 0.f);
    std::vector<int32_t> top_k(rows, 0);
    std::vector<uint64_t> seeds(rows), steps(rows, 11);
    for (int r = 0; r < rows; ++r) temperature[r] = 0.05f + 0.05f * r, seeds[r] = 977ull * r + 5;
    DeviceArray<float> d_logits(logits), d_temp(temperature), d_top_p(top_p), d_min_p(min_p);
    DeviceArray<int32_t> d_top_k(top_k), d_out(rows);
    DeviceArray<uint64_t> d_seeds(seeds), d_steps(steps);
    DeviceArray<char> d_workspace(SamplingWorkspaceBytes(rows));
    d_workspace.Poison();
    d_out.Poison();
    const SamplingParams params{d_temp.get(),  d_top_k.get(), d_top_p.get(),
                                d_min_p.get(), d_seeds.get(), d_steps.get()};
    SampleRows(d_logits.get(), params, d_out.get(), d_workspace.get(), rows, vocab, nullptr);
    const std::vector<int32_t> got = d_out.Download();
    for (int r = 0; r < rows; ++r) {
      const RowSetting s{temperature[r], 0, 1.f, 0.f};
      EXPECT_EQ(got[r],
                HostSample(logits.data() + static_cast<size_t>(r) * vocab, vocab, s, seeds[r], steps[r]))
          << "vocab " << vocab << " row " << r << " temperature " << temperature[r];
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Batch, SamplingTest, ::testing::Values(1, 3, 19, 64));

// Edits of every kind on random distinct ids of each row: the kernel against the host's ApplyLogitEdits
// (worker/engine/logit_edit.h), which the engine's tests hold to the host Sampler's penalties.
TEST(LogitEditsTest, EqualTheHostEditsBitForBit) {
  DOZE_SKIP_WITHOUT_GPU();
  for (int vocab : {151936, 1000}) {
    const int rows = 7;
    std::mt19937 rng(vocab);
    const std::vector<float> logits = RandomLogits(rows, vocab, /*integral=*/false, rng);
    std::vector<float> want = logits;
    std::vector<LogitEdit> edits;
    std::uniform_real_distribution<float> amount(-2.f, 2.f);
    for (int r = 0; r < rows; ++r) {
      std::vector<int32_t> ids(vocab);
      std::iota(ids.begin(), ids.end(), 0);
      std::shuffle(ids.begin(), ids.end(), rng);
      std::vector<doze::LogitEdit> row_edits;
      for (int i = 0; i < 300; ++i) {
        doze::LogitEdit e{ids[i]};
        if (i % 3 != 1) e.bias = amount(rng);
        if (i % 3 != 2) e.repetition = i % 2 == 0 ? 1.3f : 0.7f;
        if (i % 4 != 0) e.subtract = amount(rng);
        row_edits.push_back(e);
        edits.push_back(LogitEdit{r, e.token_id, e.bias, e.repetition, e.subtract});
      }
      doze::ApplyLogitEdits(row_edits, absl::MakeSpan(want.data() + static_cast<size_t>(r) * vocab, vocab));
    }
    DeviceArray<float> d_logits(logits);
    DeviceArray<LogitEdit> d_edits(edits);
    ApplyLogitEdits(d_logits.get(), d_edits.get(), static_cast<int>(edits.size()), vocab, nullptr);
    const std::vector<float> got = d_logits.Download();
    int differ = 0;
    for (size_t i = 0; i < got.size(); ++i) differ += got[i] != want[i];
    EXPECT_EQ(differ, 0) << "vocab " << vocab << ", " << edits.size() << " edits";
    EXPECT_NE(got, logits);
  }
}

}  // namespace
}  // namespace doze::kernels

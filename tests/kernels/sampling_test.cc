// ArgmaxRows and SampleRows against the CPU references, which replay the same random numbers.
#include "kernels/sampling.h"

#include <gtest/gtest.h>

#include "tests/kernels/kernel_test_util.h"

namespace doze::kernels {
namespace {

using testing::DeviceArray;

std::vector<float> RandomLogits(int rows, int vocab, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.f, 3.f);
  std::vector<float> logits(static_cast<size_t>(rows) * vocab);
  for (float& x : logits) x = dist(rng);
  return logits;
}

class SamplingTest : public ::testing::TestWithParam<int> {};

TEST_P(SamplingTest, ArgmaxMatchesReference) {
  DOZE_SKIP_WITHOUT_GPU();
  const int rows = GetParam();
  for (int vocab : {151936, 1000}) {
    std::mt19937 rng(rows + vocab);
    const std::vector<float> logits = RandomLogits(rows, vocab, rng);
    DeviceArray<float> d_logits(logits);
    DeviceArray<int32_t> d_out(rows);
    d_out.Poison();
    ArgmaxRows(d_logits.get(), d_out.get(), rows, vocab, nullptr);
    const std::vector<int32_t> got = d_out.Download();
    for (int r = 0; r < rows; ++r) {
      EXPECT_EQ(got[r], reference::Argmax(logits.data() + static_cast<size_t>(r) * vocab, vocab))
          << "row " << r;
    }
  }
}

// Row r gets one of several settings: greedy, plain temperature, top-k, top-p, min-p and all of them at once.
reference::RowSampling SettingsOfRow(int r) {
  static const reference::RowSampling kSettings[] = {
      {0.f, 0, 1.f, 0.f, 0},    {1.f, 0, 1.f, 0.f, 0},      {0.7f, 40, 1.f, 0.f, 0}, {1.f, 0, 0.9f, 0.f, 0},
      {1.3f, 0, 1.f, 0.05f, 0}, {0.8f, 50, 0.8f, 0.02f, 0}, {1.f, 1, 1.f, 0.f, 0},
  };
  reference::RowSampling s = kSettings[r % 7];
  s.seed = 0x1234567ull * (r + 1);
  return s;
}

TEST_P(SamplingTest, SampleMatchesReferenceAndIsReproducible) {
  DOZE_SKIP_WITHOUT_GPU();
  const int rows = GetParam(), vocab = 151936;
  std::mt19937 rng(rows * 17);
  const std::vector<float> logits = RandomLogits(rows, vocab, rng);
  std::vector<float> temperature, top_p, min_p;
  std::vector<int32_t> top_k;
  std::vector<uint64_t> seeds;
  for (int r = 0; r < rows; ++r) {
    const reference::RowSampling s = SettingsOfRow(r);
    temperature.push_back(s.temperature);
    top_k.push_back(s.top_k);
    top_p.push_back(s.top_p);
    min_p.push_back(s.min_p);
    seeds.push_back(s.seed);
  }
  DeviceArray<float> d_logits(logits), d_temp(temperature), d_top_p(top_p), d_min_p(min_p);
  DeviceArray<int32_t> d_top_k(top_k), d_out(rows);
  DeviceArray<uint64_t> d_seeds(seeds);
  const SamplingParams params{d_temp.get(), d_top_k.get(), d_top_p.get(), d_min_p.get(), d_seeds.get()};
  d_out.Poison();
  SampleRows(d_logits.get(), params, d_out.get(), rows, vocab, nullptr);
  const std::vector<int32_t> first = d_out.Download();
  d_out.Poison();
  SampleRows(d_logits.get(), params, d_out.get(), rows, vocab, nullptr);
  EXPECT_EQ(d_out.Download(), first);
  for (int r = 0; r < rows; ++r) {
    const float* row = logits.data() + static_cast<size_t>(r) * vocab;
    const reference::RowSampling s = SettingsOfRow(r);
    ASSERT_GE(first[r], 0) << "row " << r;
    ASSERT_LT(first[r], vocab) << "row " << r;
    if (s.temperature > 0.f) {
      EXPECT_TRUE(reference::KeptTokens(row, vocab, s)[first[r]]) << "row " << r;
    }
    EXPECT_EQ(first[r], reference::Sample(row, vocab, s)) << "row " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Batch, SamplingTest, ::testing::Values(1, 3, 19, 64));

}  // namespace
}  // namespace doze::kernels

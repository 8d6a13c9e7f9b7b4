// LmHeadArgmax against the CPU reference: the argmax of fp32 logits x @ w^T, at row counts across the row
// tiles (1 to 64), vocabularies that end inside a block's 128 rows, Qwen2.5-0.5B's hidden size and a small
// one; a tie split over two blocks goes to the lower id; and the same rows through cuBLASLt's logits and the
// sampler's argmax choose the same tokens.
#include "kernels/lm_head_argmax.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/sampling.h"
#include "tests/kernels/kernel_test_util.h"

namespace doze::kernels {
namespace {

using testing::DeviceArray;
using testing::RandomBf16;
using testing::ToBf16;

// The logits' argmax per row (lowest id on ties), from fp32 sums of the bf16 inputs.
std::vector<float> Logits(const std::vector<float>& x, const std::vector<float>& w, int m, int n, int k) {
  std::vector<float> y(static_cast<size_t>(m) * n);
  reference::Linear(x.data(), w.data(), nullptr, y.data(), m, n, k);
  return y;
}

int RowArgmax(const std::vector<float>& logits, int r, int n) {
  const float* row = logits.data() + static_cast<size_t>(r) * n;
  return static_cast<int>(std::max_element(row, row + n) - row);
}

using Operands = testing::LinearOperands;

std::vector<int32_t> RunLmHeadArgmax(const std::vector<float>& x, const std::vector<float>& w, int m, int n,
                                     int k) {
  DeviceArray<__nv_bfloat16> d_x(ToBf16(x)), d_w(ToBf16(w));
  DeviceArray<int32_t> d_tokens(m);
  DeviceArray<char> d_workspace(LmHeadArgmaxWorkspaceBytes(m));
  d_tokens.Poison();
  d_workspace.Poison();
  LmHeadArgmax(d_x.get(), d_w.get(), d_tokens.get(), m, n, k, d_workspace.get(), nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  return d_tokens.Download();
}

// Every row's token is the reference's argmax, or (sums in another order) a logit within rounding of it.
void ExpectArgmax(const std::vector<int32_t>& tokens, const std::vector<float>& logits, int m, int n) {
  for (int r = 0; r < m; ++r) {
    const int want = RowArgmax(logits, r, n);
    ASSERT_GE(tokens[r], 0) << "row " << r;
    ASSERT_LT(tokens[r], n) << "row " << r;
    if (tokens[r] == want) continue;
    const float best = logits[static_cast<size_t>(r) * n + want];
    EXPECT_NEAR(logits[static_cast<size_t>(r) * n + tokens[r]], best, 1e-4f * (1.f + std::fabs(best)))
        << "row " << r << ": token " << tokens[r] << " against " << want;
  }
}

class LmHeadArgmaxShapeTest : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(LmHeadArgmaxShapeTest, MatchesReferenceArgmax) {
  DOZE_SKIP_WITHOUT_GPU();
  const auto [m, n, k] = GetParam();
  ASSERT_TRUE(LmHeadArgmaxSupports(m, n, k));
  const Operands o(m, n, k, m * 7919 + n + k, 0.1f);
  ExpectArgmax(RunLmHeadArgmax(o.x, o.w, m, n, k), Logits(o.x, o.w, m, n, k), m, n);
}

INSTANTIATE_TEST_SUITE_P(RowsVocabHidden, LmHeadArgmaxShapeTest,
                         ::testing::Combine(::testing::Values(1, 3, 8, 19, 33, 64),
                                            ::testing::Values(5000, 40000), ::testing::Values(896, 128)));

// Qwen2.5-0.5B's whole vocabulary at a few rows.
TEST(LmHeadArgmaxTest, FullVocabulary) {
  DOZE_SKIP_WITHOUT_GPU();
  const int m = 3, n = 151936, k = 896;
  const Operands o(m, n, k, 5, 0.1f);
  ExpectArgmax(RunLmHeadArgmax(o.x, o.w, m, n, k), Logits(o.x, o.w, m, n, k), m, n);
}

// Two equal weight rows in different blocks' groups give row 0 its largest logit twice: the lower id wins.
TEST(LmHeadArgmaxTest, TieGoesToTheLowerId) {
  DOZE_SKIP_WITHOUT_GPU();
  const int m = 5, n = 70000, k = 256, low = 300, high = 65000;
  Operands o(m, n, k, 9, 0.05f);
  const std::vector<float>& x = o.x;
  std::vector<float>& w = o.w;
  for (int i = 0; i < k; ++i) {
    w[static_cast<size_t>(low) * k + i] = w[static_cast<size_t>(high) * k + i] = x[i] > 0 ? 0.5f : -0.5f;
  }
  const std::vector<int32_t> tokens = RunLmHeadArgmax(x, w, m, n, k);
  EXPECT_EQ(tokens[0], low);
  ExpectArgmax(tokens, Logits(x, w, m, n, k), m, n);
}

// The path it replaces: cuBLASLt's fp32 logits, then the sampler's greedy argmax.
TEST(LmHeadArgmaxTest, ChoosesAsLogitsThenArgmax) {
  DOZE_SKIP_WITHOUT_GPU();
  const int m = 64, n = 151936, k = 896;
  const Operands o(m, n, k, 13, 0.1f);
  const std::vector<float>&x = o.x, &w = o.w;
  DeviceArray<__nv_bfloat16> d_x(ToBf16(x)), d_w(ToBf16(w));
  DeviceArray<float> d_logits(static_cast<size_t>(m) * n);
  DeviceArray<int32_t> d_tokens(m);
  DeviceArray<char> d_workspace(SamplingWorkspaceBytes(m));
  GemmContext gemm;
  gemm.Linear(d_x.get(), d_w.get(), nullptr, d_logits.get(), OutType::kF32, m, n, k, nullptr);
  ArgmaxRows(d_logits.get(), d_tokens.get(), d_workspace.get(), m, n, nullptr);
  const std::vector<int32_t> unfused = d_tokens.Download();
  const std::vector<int32_t> fused = RunLmHeadArgmax(x, w, m, n, k);
  // Where the two differ, the logits of both tokens (fp32 sums on the CPU) must be within rounding.
  const auto logit = [&](int r, int j) {
    double sum = 0;
    for (int i = 0; i < k; ++i)
      sum += static_cast<double>(x[static_cast<size_t>(r) * k + i]) * w[static_cast<size_t>(j) * k + i];
    return static_cast<float>(sum);
  };
  int same = 0;
  for (int r = 0; r < m; ++r) {
    if (fused[r] == unfused[r]) {
      ++same;
      continue;
    }
    const float a = logit(r, fused[r]), b = logit(r, unfused[r]);
    EXPECT_NEAR(a, b, 1e-4f * (1.f + std::fabs(b))) << "row " << r;
  }
  EXPECT_GE(same, m - 1) << "rows whose token differs from cuBLASLt + argmax";
}

// x rows that are not finite: a NaN logit never wins, a row of NaNs gets token 0, never one past the
// vocabulary.
TEST(LmHeadArgmaxTest, NonFiniteRowsGiveTokensInTheVocabulary) {
  DOZE_SKIP_WITHOUT_GPU();
  const testing::NonFiniteLmHead c(5000, 64, 17);
  const std::vector<int32_t> tokens = RunLmHeadArgmax(c.o.x, c.o.w, 3, 5000, 64);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(tokens[r], c.want[r]) << "row " << r;
}

TEST(LmHeadArgmaxTest, Supports) {
  EXPECT_TRUE(LmHeadArgmaxSupports(64, 151936, 896));
  EXPECT_FALSE(LmHeadArgmaxSupports(65, 151936, 896));   // more rows than a block's x tiles
  EXPECT_FALSE(LmHeadArgmaxSupports(64, 151936, 1536));  // x beyond the shared-memory budget
  EXPECT_TRUE(LmHeadArgmaxSupports(8, 151936, 1536));
  EXPECT_FALSE(LmHeadArgmaxSupports(4, 151936, 900));  // k not whole 64-wide tiles
}

}  // namespace
}  // namespace doze::kernels

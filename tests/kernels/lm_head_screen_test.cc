// The screened greedy LM head (kernels/lm_head_screen.h), its int8 and int4 copies. On the CPU: the screen's
// bound is above every logit's exact value and fp32 sums, on random rows, on rows built to strain it (one
// huge element, a massive activation in x, constant rows) and where it is nearly tight. On the GPU: the
// kernel's bounds are its CPU reference's; the tokens are the fp32 logits' argmax at 1 to 4 rows through
// either copy, vocabularies that end inside a tile, two hidden sizes and the whole Qwen2.5-0.5B
// vocabulary (where warps take several tiles); ties go to the lower id inside a block, a lane and across
// blocks; a row that only the exact sums rank first (the copies equal) is found; an all-zero x ties every
// row; the bf16 pass (kernels/lm_head_argmax.h) chooses the same tokens; rows of x that are not finite give
// the bf16 pass's tokens; a published logit left over from elsewhere (a huge one) slows the int4 screen but
// does not change its token; and with the final norm taken in (ScreenNorm) the rows and tokens are
// RmsNorm-then-screen's.
#include "kernels/lm_head_screen.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <utility>
#include <vector>

#include "kernels/lm_head_argmax.h"
#include "kernels/rms_norm.h"
#include "tests/kernels/kernel_test_util.h"

namespace doze::kernels {
namespace {

using testing::DeviceArray;
using testing::RandomBf16;
using testing::ToBf16;
using testing::ToFloat;

// x . w_j in double, and in fp32 summed forwards, backwards and in 32 interleaved partial sums.
struct Logits {
  double exact;
  float fp32[3];
};

Logits LogitOf(const float* x, const float* w, int k) {
  Logits out{0, {0.f, 0.f, 0.f}};
  float parts[32] = {};
  for (int i = 0; i < k; ++i) {
    out.exact += static_cast<double>(x[i]) * w[i];
    out.fp32[0] = std::fma(x[i], w[i], out.fp32[0]);
    out.fp32[1] = std::fma(x[k - 1 - i], w[k - 1 - i], out.fp32[1]);
    parts[i % 32] = std::fma(x[i], w[i], parts[i % 32]);
  }
  for (float p : parts) out.fp32[2] += p;
  return out;
}

// Every logit of x's rows against w's is at most its screen bound, and the bound is not loose beyond
// `max_slack_ratio` of the row's logit spread (the bound must be useful, not only true).
void ExpectBoundHolds(const std::vector<float>& x, const std::vector<float>& w, int m, int n, int k,
                      int bits) {
  const reference::LmHeadScreenRows screen = reference::BuildLmHeadScreen(w.data(), n, k, bits);
  const std::vector<float> upper = reference::LmHeadScreenUpper(x.data(), m, screen, n, k);
  for (int r = 0; r < m; ++r) {
    for (int j = 0; j < n; ++j) {
      const Logits l =
          LogitOf(x.data() + static_cast<size_t>(r) * k, w.data() + static_cast<size_t>(j) * k, k);
      const float u = upper[static_cast<size_t>(r) * n + j];
      ASSERT_GE(static_cast<double>(u), l.exact) << "row " << r << " vocabulary row " << j;
      for (float f : l.fp32) ASSERT_GE(u, f) << "row " << r << " vocabulary row " << j;
    }
  }
}

// The int8 copy (8) and the int4 one (4).
class LmHeadScreenBoundTest : public ::testing::TestWithParam<int> {};

TEST_P(LmHeadScreenBoundTest, HoldsOnRandomRows) {
  std::mt19937 rng(3);
  const int m = 3, n = 400, k = 896;
  ExpectBoundHolds(RandomBf16(m * k, -2.f, 2.f, rng), RandomBf16(n * k, -0.05f, 0.05f, rng), m, n, k,
                   GetParam());
}

TEST_P(LmHeadScreenBoundTest, HoldsOnStrainedRows) {
  std::mt19937 rng(4);
  const int m = 2, n = 64, k = 128;
  std::vector<float> x = RandomBf16(m * k, -1.f, 1.f, rng), w = RandomBf16(n * k, -0.1f, 0.1f, rng);
  x[7] = 300.f;                                 // a massive activation: x's integer step is coarse
  for (int i = 0; i < k; ++i) x[k + i] = 0.5f;  // a constant row
  w[5 * k + 3] = 50.f;                          // one huge weight: the row's other weights round to 0
  for (int i = 0; i < k; ++i) w[9 * k + i] = (i % 2 == 0 ? 1.f : -1.f) * 0.0625f;  // exact in int8
  for (int i = 0; i < k; ++i) w[11 * k + i] = 0.f;                                 // a zero row
  ExpectBoundHolds(x, w, m, n, k, GetParam());
}

// x along row 0's rounding error (w - w~, scaled into bf16): the first Cauchy-Schwarz term is then nearly
// an equality, so a bound that cut it short would fail here.
TEST_P(LmHeadScreenBoundTest, HoldsWhereTheRoundingErrorAlignsWithX) {
  std::mt19937 rng(6);
  const int n = 8, k = 896;
  const std::vector<float> w = RandomBf16(n * k, -0.05f, 0.05f, rng);
  const reference::LmHeadScreenRows screen = reference::BuildLmHeadScreen(w.data(), n, k, GetParam());
  std::vector<float> x(k);
  for (int i = 0; i < k; ++i) {
    const float error = w[i] - screen.scale[0] * screen.q[i];
    x[i] = reference::RoundBf16(error / screen.scale[0]);
  }
  ExpectBoundHolds(x, w, 1, n, k, GetParam());
  const std::vector<float> upper = reference::LmHeadScreenUpper(x.data(), 1, screen, n, k);
  const double logit = LogitOf(x.data(), w.data(), k).exact;
  double approx = 0;
  for (int i = 0; i < k; ++i) approx += static_cast<double>(x[i]) * screen.scale[0] * screen.q[i];
  EXPECT_GT(logit - approx, 0.9 * (upper[0] - approx)) << "the bound is not nearly tight here";
}

INSTANTIATE_TEST_SUITE_P(Copies, LmHeadScreenBoundTest, ::testing::Values(8, 4));

// On random rows of the 0.5B shape's hidden size the slack (bound less the exact logit) is a small part of
// the logits' spread for the int8 copy, so that few rows can reach the best one, and for the int4 copy
// few enough rows reach the best logit of a 20,000-row vocabulary that evaluating them costs less than the
// bytes it saves: the screens only pay where that holds.
TEST(LmHeadScreenTightnessTest, IsTightEnoughToScreen) {
  std::mt19937 rng(5);
  const int n = 20000, k = 896;
  const std::vector<float> x = RandomBf16(k, -1.f, 1.f, rng), w = RandomBf16(n * k, -0.05f, 0.05f, rng);
  std::vector<double> logits(n);
  double sum = 0, sum_sq = 0, top = -INFINITY;
  for (int j = 0; j < n; ++j) {
    logits[j] = LogitOf(x.data(), w.data() + static_cast<size_t>(j) * k, k).exact;
    sum += logits[j];
    sum_sq += logits[j] * logits[j];
    top = std::max(top, logits[j]);
  }
  const double spread = std::sqrt(sum_sq / n - (sum / n) * (sum / n));
  for (int bits : {8, 4}) {
    const reference::LmHeadScreenRows screen = reference::BuildLmHeadScreen(w.data(), n, k, bits);
    const std::vector<float> upper = reference::LmHeadScreenUpper(x.data(), 1, screen, n, k);
    double slack = 0;
    int reaching = 0;
    for (int j = 0; j < n; ++j) {
      slack = std::max(slack, upper[j] - logits[j]);
      reaching += upper[j] >= top;
    }
    EXPECT_GT(slack, 0.0);
    if (bits == 8) {
      EXPECT_LT(slack, 0.5 * spread) << "bound slack " << slack << " against a logit spread of " << spread;
    } else {
      EXPECT_LT(reaching, n / 20) << reaching << " of " << n << " rows reach the best logit";
    }
    std::printf("int%d copy: slack %.4f against a spread of %.4f; %d of %d rows reach the best logit\n", bits,
                slack, spread, reaching, n);
  }
}

using Operands = testing::LinearOperands;

// The screen built on the device and the tokens it chooses; `upper` gets the kernel's bounds.
struct ScreenRun {
  std::vector<int32_t> tokens;
  std::vector<float> upper;
};

// bits: the copy (8 or 4; 0 the default choice, LmHeadScreenDefaultBits).
ScreenRun RunScreened(const std::vector<float>& x, const std::vector<float>& w, int m, int n, int k,
                      int bits = 0) {
  if (bits == 0) bits = LmHeadScreenDefaultBits(k);
  DeviceArray<__nv_bfloat16> d_x(ToBf16(x)), d_w(ToBf16(w));
  DeviceArray<char> d_screen(LmHeadScreenBytes(n, k, bits)), d_workspace(LmHeadScreenWorkspaceBytes(n));
  DeviceArray<int32_t> d_tokens(m);
  d_screen.Poison();
  d_workspace.Poison();
  d_tokens.Poison();
  BuildLmHeadScreen(d_w.get(), d_screen.get(), n, k, bits, nullptr);
  LmHeadScreenedArgmax(d_x.get(), d_w.get(), d_screen.get(), bits, d_tokens.get(), m, n, k, d_workspace.get(),
                       nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<char> workspace = d_workspace.Download();
  ScreenRun run{d_tokens.Download(), std::vector<float>(static_cast<size_t>(m) * n)};
  std::copy_n(reinterpret_cast<const float*>(workspace.data()), run.upper.size(), run.upper.begin());
  return run;
}

// The lowest id of each row's largest logit (double sums of the bf16 inputs).
std::vector<int> ExactArgmax(const std::vector<float>& x, const std::vector<float>& w, int m, int n, int k) {
  std::vector<int> best(m, 0);
  for (int r = 0; r < m; ++r) {
    double top = -INFINITY;
    for (int j = 0; j < n; ++j) {
      const double l =
          LogitOf(x.data() + static_cast<size_t>(r) * k, w.data() + static_cast<size_t>(j) * k, k).exact;
      if (l > top) {
        top = l;
        best[r] = j;
      }
    }
  }
  return best;
}

// Every row's token is the exact argmax, or (fp32 sums) a logit within rounding of it.
void ExpectArgmax(const std::vector<int32_t>& tokens, const std::vector<float>& x,
                  const std::vector<float>& w, int m, int n, int k) {
  const std::vector<int> want = ExactArgmax(x, w, m, n, k);
  for (int r = 0; r < m; ++r) {
    ASSERT_GE(tokens[r], 0) << "row " << r;
    ASSERT_LT(tokens[r], n) << "row " << r;
    if (tokens[r] == want[r]) continue;
    const float* xr = x.data() + static_cast<size_t>(r) * k;
    const double got = LogitOf(xr, w.data() + static_cast<size_t>(tokens[r]) * k, k).exact;
    const double best = LogitOf(xr, w.data() + static_cast<size_t>(want[r]) * k, k).exact;
    EXPECT_NEAR(got, best, 1e-5 * (1 + std::fabs(best)))
        << "row " << r << ": token " << tokens[r] << " against " << want[r];
  }
}

class LmHeadScreenShapeTest : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(LmHeadScreenShapeTest, MatchesExactArgmax) {
  DOZE_SKIP_WITHOUT_GPU();
  const auto [m, n, k] = GetParam();
  ASSERT_TRUE(LmHeadScreenSupportsShape(n, k));
  const Operands o(m, n, k, m * 7919 + n + k, 0.1f);
  for (int bits : {8, 4}) {
    SCOPED_TRACE(::testing::Message() << "int" << bits << " copy");
    const ScreenRun run = RunScreened(o.x, o.w, m, n, k, bits);
    ExpectArgmax(run.tokens, o.x, o.w, m, n, k);
    // The kernel's bounds are the reference's (x's sum of squares in another order: equal to rounding of the
    // bound's slack, which for the int4 copy is a few logit spreads, so the tolerance is scaled to the
    // bounds' size rather than to each one's value, which may be near zero).
    const reference::LmHeadScreenRows screen = reference::BuildLmHeadScreen(o.w.data(), n, k, bits);
    const std::vector<float> want = reference::LmHeadScreenUpper(o.x.data(), m, screen, n, k);
    float size = 0.f;
    for (float u : want) size = std::max(size, std::fabs(u));
    EXPECT_TRUE(testing::AllClose(run.upper, want, 1e-6f * (1.f + size), 1e-5f));
  }
}

INSTANTIATE_TEST_SUITE_P(RowsVocabHidden, LmHeadScreenShapeTest,
                         ::testing::Combine(::testing::Values(1, 2, 3, 4), ::testing::Values(5001, 40000),
                                            ::testing::Values(896, 128)));

TEST(LmHeadScreenTest, FullVocabulary) {
  DOZE_SKIP_WITHOUT_GPU();
  const int n = 151936, k = 896;
  const Operands o(2, n, k, 5, 0.1f);
  ExpectArgmax(RunScreened(o.x, o.w, 2, n, k, 8).tokens, o.x, o.w, 2, n, k);
  ExpectArgmax(RunScreened(o.x, o.w, 2, n, k, 4).tokens, o.x, o.w, 2, n, k);
  ExpectArgmax(RunScreened(o.x, o.w, 1, n, k, 4).tokens, o.x, o.w, 1, n, k);
}

// w's rows `low` and `high` set to sign(x_0) * 0.5, so that x row 0's largest logit is theirs; `high_bump`
// raises row high's element 0 by that much (toward x_0's sign).
Operands TiedRows(int n, int k, int low, int high, float high_bump) {
  Operands o(3, n, k, 9, 0.05f);
  for (int i = 0; i < k; ++i) {
    const float v = o.x[i] > 0 ? 0.5f : -0.5f;
    o.w[static_cast<size_t>(low) * k + i] = o.w[static_cast<size_t>(high) * k + i] = v;
  }
  o.x[0] = 0.75f;
  o.w[static_cast<size_t>(low) * k] = 0.25f;
  o.w[static_cast<size_t>(high) * k] = 0.25f + high_bump;
  return o;
}

// Vocabularies of one wave of tiles (each warp a tile) and Qwen2.5's, where at three rows a warp takes three
// tiles (rows 130 and 258 are then one lane's: tiles 4 and 8 of block 0).
class LmHeadScreenTieTest : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(LmHeadScreenTieTest, TieInOneBlockGoesToTheLowerId) {
  DOZE_SKIP_WITHOUT_GPU();
  const auto [n, high] = GetParam();
  const int k = 256;
  const Operands o = TiedRows(n, k, 130, high, 0.f);
  for (const auto& [m, bits] : {std::pair{3, 8}, std::pair{3, 4}, std::pair{1, 4}}) {
    const ScreenRun run = RunScreened(o.x, o.w, m, n, k, bits);
    EXPECT_EQ(run.tokens[0], 130) << "int" << bits;
    ExpectArgmax(run.tokens, o.x, o.w, m, n, k);
  }
}

// Rows 130 and `high` have the same copy (0.25 and 0.25 + 2^-9 both round to 64 steps of 0.5 / 127, and to 4
// of 0.5 / 7), so only exact sums can find that row high's logit is larger: the int8 screen's block
// evaluates row 130 and its second pass row high; the int4 screen's block evaluates row 130 and its settling
// kernel both (their bounds reach row 130's logit).
TEST_P(LmHeadScreenTieTest, ExactSumsFindWhatTheCopyCannotRank) {
  DOZE_SKIP_WITHOUT_GPU();
  const auto [n, high] = GetParam();
  const int k = 256;
  const Operands o = TiedRows(n, k, 130, high, 1.f / 512);
  for (const auto& [m, bits] : {std::pair{3, 8}, std::pair{3, 4}, std::pair{1, 4}}) {
    const reference::LmHeadScreenRows screen = reference::BuildLmHeadScreen(o.w.data(), n, k, bits);
    ASSERT_TRUE(
        std::equal(screen.q.begin() + 130 * k, screen.q.begin() + 131 * k, screen.q.begin() + high * k));
    const ScreenRun run = RunScreened(o.x, o.w, m, n, k, bits);
    EXPECT_EQ(run.tokens[0], high) << "int" << bits;
    ExpectArgmax(run.tokens, o.x, o.w, m, n, k);
  }
}

INSTANTIATE_TEST_SUITE_P(VocabAndRow, LmHeadScreenTieTest,
                         ::testing::Values(std::make_tuple(7000, 200), std::make_tuple(151936, 200),
                                           std::make_tuple(151936, 258)));

TEST(LmHeadScreenTest, TieAcrossBlocksGoesToTheLowerId) {
  DOZE_SKIP_WITHOUT_GPU();
  const int n = 7000, k = 256;
  const Operands o = TiedRows(n, k, 300, 6500, 0.f);
  EXPECT_EQ(RunScreened(o.x, o.w, 3, n, k, 8).tokens[0], 300);
  EXPECT_EQ(RunScreened(o.x, o.w, 3, n, k, 4).tokens[0], 300);
  EXPECT_EQ(RunScreened(o.x, o.w, 1, n, k, 4).tokens[0], 300);
}

// x = 0: every logit is 0 and every bound reaches it; the second pass evaluates every row: token 0.
TEST(LmHeadScreenTest, ZeroInputTiesEveryRow) {
  DOZE_SKIP_WITHOUT_GPU();
  const int m = 2, n = 3000, k = 128;
  Operands o(m, n, k, 11, 0.1f);
  std::fill(o.x.begin(), o.x.begin() + k, 0.f);
  for (int bits : {8, 4}) {
    const ScreenRun run = RunScreened(o.x, o.w, m, n, k, bits);
    EXPECT_EQ(run.tokens[0], 0) << "int" << bits;
    ExpectArgmax(run.tokens, o.x, o.w, m, n, k);
  }
}

// The bf16 pass it replaces chooses the same tokens (or, summed in another order, a logit within rounding).
TEST(LmHeadScreenTest, ChoosesAsTheBf16Pass) {
  DOZE_SKIP_WITHOUT_GPU();
  const int m = 4, n = 151936, k = 896;
  const Operands o(m, n, k, 13, 0.1f);
  DeviceArray<__nv_bfloat16> d_x(ToBf16(o.x)), d_w(ToBf16(o.w));
  DeviceArray<int32_t> d_tokens(m);
  DeviceArray<char> d_workspace(LmHeadArgmaxWorkspaceBytes(m));
  LmHeadArgmax(d_x.get(), d_w.get(), d_tokens.get(), m, n, k, d_workspace.get(), nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<int32_t> bf16_pass = d_tokens.Download();
  const std::vector<int32_t> screened = RunScreened(o.x, o.w, m, n, k, 8).tokens;
  int same = 0;
  for (int r = 0; r < m; ++r) same += bf16_pass[r] == screened[r];
  EXPECT_GE(same, m - 1);
  ExpectArgmax(screened, o.x, o.w, m, n, k);
  // The int4 screen's tokens are the int8 screen's (both the argmax of the same exact sums).
  EXPECT_EQ(RunScreened(o.x, o.w, m, n, k, 4).tokens, screened);
  EXPECT_EQ(RunScreened(o.x, o.w, 1, n, k, 4).tokens[0], RunScreened(o.x, o.w, 1, n, k, 8).tokens[0]);
}

// x rows that are not finite: no bound holds, every row is evaluated, and the tokens are the bf16 pass's (a
// NaN logit never wins, a row of NaNs gets token 0), never one past the vocabulary.
TEST(LmHeadScreenTest, NonFiniteRowsGiveTokensInTheVocabulary) {
  DOZE_SKIP_WITHOUT_GPU();
  const testing::NonFiniteLmHead c(5000, 64, 19);
  const std::vector<int32_t> tokens = RunScreened(c.o.x, c.o.w, 3, 5000, 64).tokens;
  for (int r = 0; r < 3; ++r) EXPECT_EQ(tokens[r], c.want[r]) << "row " << r;
}

// The int4 screen of rows that are not finite, at a k it takes, together and one at a time.
TEST(LmHeadScreenTest, NonFiniteRowsGiveTheBf16PassTokensThroughTheInt4Copy) {
  DOZE_SKIP_WITHOUT_GPU();
  const testing::NonFiniteLmHead c(5000, 128, 23);
  const std::vector<int32_t> tokens = RunScreened(c.o.x, c.o.w, 3, 5000, 128, 4).tokens;
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(tokens[r], c.want[r]) << "row " << r;
    const std::vector<float> x(c.o.x.begin() + r * 128, c.o.x.begin() + (r + 1) * 128);
    EXPECT_EQ(RunScreened(x, c.o.w, 1, 5000, 128, 4).tokens[0], c.want[r]) << "row " << r << " alone";
  }
}

// A published logit the final kernel did not reset (another kernel wrote the word: here a huge value) only
// costs time: every block evaluates just its best row, the final kernel's second pass finds the token, and
// the next call (the word reset) is exact too.
TEST(LmHeadScreenTest, StalePublishedLogitDoesNotChangeTheToken) {
  DOZE_SKIP_WITHOUT_GPU();
  const int m = 2, n = 40000, k = 896;
  const Operands o(m, n, k, 29, 0.1f);
  DeviceArray<__nv_bfloat16> d_x(ToBf16(o.x)), d_w(ToBf16(o.w));
  DeviceArray<char> d_screen(LmHeadScreenBytes(n, k, 4)), d_workspace(LmHeadScreenWorkspaceBytes(n));
  DeviceArray<int32_t> d_tokens(m);
  BuildLmHeadScreen(d_w.get(), d_screen.get(), n, k, 4, nullptr);
  CUDA_CHECK(cudaMemset(d_workspace.get(), 0xfe, LmHeadScreenWorkspaceBytes(n)));  // 0xfefefefe: ~1.7e38
  for (int call = 0; call < 2; ++call) {
    d_tokens.Poison();
    LmHeadScreenedArgmax(d_x.get(), d_w.get(), d_screen.get(), 4, d_tokens.get(), m, n, k, d_workspace.get(),
                         nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    ExpectArgmax(d_tokens.Download(), o.x, o.w, m, n, k);
  }
}

// With the final norm taken in (ScreenNorm; x not read), the screen writes the rows bit for bit as RmsNorm
// does and chooses the tokens it chooses after RmsNorm, at every row count, for the Qwen2.5-0.5B shape and a
// small one.
TEST(LmHeadScreenTest, TakingTheNormEqualsRmsNormFirst) {
  DOZE_SKIP_WITHOUT_GPU();
  for (const auto& [n, k] : {std::pair{151936, 896}, std::pair{3001, 128}}) {
    std::mt19937 rng(static_cast<uint32_t>(n + k));
    DeviceArray<__nv_bfloat16> d_w(ToBf16(RandomBf16(static_cast<size_t>(n) * k, -0.1f, 0.1f, rng)));
    DeviceArray<char> d_screen8(LmHeadScreenBytes(n, k, 8)), d_screen4(LmHeadScreenBytes(n, k, 4));
    BuildLmHeadScreen(d_w.get(), d_screen8.get(), n, k, 8, nullptr);
    BuildLmHeadScreen(d_w.get(), d_screen4.get(), n, k, 4, nullptr);
    for (int m : {1, 2, 3, 4}) {
      const std::vector<float> residual = RandomBf16(static_cast<size_t>(m) * k, -4.f, 4.f, rng);
      const std::vector<float> weight = RandomBf16(k, 0.5f, 1.5f, rng);
      DeviceArray<__nv_bfloat16> d_res(ToBf16(residual)), d_weight(ToBf16(weight)),
          d_x(static_cast<size_t>(m) * k), d_x_taken(static_cast<size_t>(m) * k);
      DeviceArray<char> d_workspace(LmHeadScreenWorkspaceBytes(n));
      DeviceArray<int32_t> d_tokens(m), d_tokens_taken(m);
      RmsNorm(d_res.get(), d_weight.get(), d_x.get(), m, k, 1e-6f, nullptr);
      for (int bits : {8, 4}) {
        const void* screen = bits == 8 ? d_screen8.get() : d_screen4.get();
        d_x_taken.Poison();
        d_tokens_taken.Poison();
        LmHeadScreenedArgmax(d_x.get(), d_w.get(), screen, bits, d_tokens.get(), m, n, k, d_workspace.get(),
                             nullptr);
        LmHeadScreenedArgmax(nullptr, d_w.get(), screen, bits, d_tokens_taken.get(), m, n, k,
                             d_workspace.get(), nullptr,
                             ScreenNorm{d_res.get(), d_weight.get(), 1e-6f, d_x_taken.get()});
        CUDA_CHECK(cudaDeviceSynchronize());
        EXPECT_EQ(ToFloat(d_x_taken.Download()), ToFloat(d_x.Download()))
            << "x, m=" << m << " k=" << k << " int" << bits;
        EXPECT_EQ(d_tokens_taken.Download(), d_tokens.Download())
            << "tokens, m=" << m << " k=" << k << " int" << bits;
      }
    }
  }
}

TEST(LmHeadScreenTest, Supports) {
  EXPECT_TRUE(LmHeadScreenSupportsShape(151936, 896));
  EXPECT_TRUE(LmHeadScreenSupportsShape(5, 64));
  EXPECT_FALSE(LmHeadScreenSupportsShape(151936, 900));   // k not whole 64-wide tiles
  EXPECT_FALSE(LmHeadScreenSupportsShape(151936, 8192));  // x's copies beyond the shared-memory budget
  EXPECT_FALSE(LmHeadScreenPreferred(5, 151936, 896));    // more rows than the kernel takes
  EXPECT_EQ(LmHeadScreenBytes(33, 128, 8), 64u * 128 + 3 * 64 * sizeof(float));
  EXPECT_EQ(LmHeadScreenBytes(33, 128, 4), 64u * 64 + 3 * 64 * sizeof(float));
  EXPECT_TRUE(LmHeadScreen4Fits(896));
  EXPECT_FALSE(LmHeadScreen4Fits(192));  // k not whole 128-wide groups of pieces
}

}  // namespace
}  // namespace doze::kernels

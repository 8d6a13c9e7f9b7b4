#include "worker/engine/sampler.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/engine/logits_processor.h"

namespace doze {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

constexpr float kInf = std::numeric_limits<float>::infinity();

// Logits whose softmax is exactly `probs`.
std::vector<float> LogitsOf(const std::vector<double>& probs) {
  std::vector<float> logits;
  for (double p : probs) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

// Which entries survived masking.
std::vector<bool> Kept(const std::vector<float>& logits) {
  std::vector<bool> kept;
  for (float l : logits) kept.push_back(l != -kInf);
  return kept;
}

struct MaskCase {
  const char* name;
  std::vector<double> probs;
  int top_k;
  float top_p;
  float min_p;
  std::vector<bool> kept;
};

class MaskTest : public ::testing::TestWithParam<MaskCase> {};

TEST_P(MaskTest, KeepsTheHandComputedSet) {
  const MaskCase& c = GetParam();
  std::vector<float> logits = LogitsOf(c.probs);
  MaskTopK(c.top_k, absl::MakeSpan(logits));
  MaskTopP(c.top_p, absl::MakeSpan(logits));
  MaskMinP(c.min_p, absl::MakeSpan(logits));
  EXPECT_THAT(Kept(logits), ElementsAreArray(c.kept));
}

INSTANTIATE_TEST_SUITE_P(
    Masks, MaskTest,
    ::testing::Values(
        //                         probs                     k  top_p min_p kept
        MaskCase{"off", {0.1, 0.5, 0.2, 0.2}, 0, 1.0f, 0.0f, {true, true, true, true}},
        MaskCase{"top_k_1", {0.1, 0.5, 0.2, 0.2}, 1, 1.0f, 0.0f, {false, true, false, false}},
        // k = 2 ends inside a tie at 0.2: both tied tokens stay, as in Hugging Face.
        MaskCase{"top_k_tie", {0.1, 0.5, 0.2, 0.2}, 2, 1.0f, 0.0f, {false, true, true, true}},
        MaskCase{"top_k_beyond_vocab", {0.1, 0.5, 0.2, 0.2}, 9, 1.0f, 0.0f, {true, true, true, true}},
        // Sorted 0.5, 0.2 (id 2), 0.2 (id 3), 0.1: mass above id 2 is 0.5 < 0.6, above id 3 is 0.7.
        MaskCase{"top_p_0.6", {0.1, 0.5, 0.2, 0.2}, 0, 0.6f, 0.0f, {false, true, true, false}},
        MaskCase{"top_p_0.45", {0.1, 0.5, 0.2, 0.2}, 0, 0.45f, 0.0f, {false, true, false, false}},
        MaskCase{"top_p_0.95", {0.1, 0.5, 0.2, 0.2}, 0, 0.95f, 0.0f, {true, true, true, true}},
        // min_p 0.3 of 0.5 is 0.15: 0.1 goes.
        MaskCase{"min_p_0.3", {0.1, 0.5, 0.2, 0.2}, 0, 1.0f, 0.3f, {false, true, true, true}},
        MaskCase{"min_p_0.5", {0.1, 0.5, 0.2, 0.2}, 0, 1.0f, 0.5f, {false, true, false, false}},
        // After top-k 3 the survivors renormalise to 5/9, 2/9, 2/9: top-p 0.7 keeps 5/9 and one 2/9.
        MaskCase{"top_k_then_top_p", {0.1, 0.5, 0.2, 0.2}, 3, 0.7f, 0.0f, {false, true, true, false}}),
    [](const auto& info) {
      std::string name = info.param.name;
      for (char& ch : name) ch = std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
      return name;
    });

TEST(MaskTest, TopPSortsBeyondTheFirstCandidates) {
  // 300 equally likely tokens: top-p 0.9 keeps the 270 lowest ids, past the first partial sort of 64.
  std::vector<float> logits(300, 1.0f);
  MaskTopP(0.9f, absl::MakeSpan(logits));
  int kept = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] != -kInf) {
      ++kept;
      EXPECT_LT(i, 270u);
    }
  }
  EXPECT_EQ(kept, 270);
}

TEST(PenaltyTest, RepetitionPenaltyDividesPositiveAndMultipliesNegativeOncePerId) {
  std::vector<float> logits = {2.0f, -2.0f, 1.0f, 0.5f};
  ApplyRepetitionPenalty(2.0f, std::vector<int32_t>{0, 1, 1}, absl::MakeSpan(logits));
  EXPECT_THAT(logits, ElementsAre(1.0f, -4.0f, 1.0f, 0.5f));
}

TEST(PenaltyTest, PresenceAndFrequencyFollowOpenAi) {
  std::vector<float> logits = {2.0f, -2.0f, 1.0f, 0.5f};
  ApplyPresenceFrequencyPenalties(0.5f, 0.25f, {{0, 2}, {2, 1}}, absl::MakeSpan(logits));
  EXPECT_THAT(logits, ElementsAre(2.0f - 0.5f - 0.5f, -2.0f, 1.0f - 0.5f - 0.25f, 0.5f));
}

TEST(PenaltyTest, LogitBiasAdds) {
  std::vector<float> logits = {2.0f, -2.0f, 1.0f};
  ApplyLogitBias({{1, 100.0f}, {2, -1.5f}}, absl::MakeSpan(logits));
  EXPECT_THAT(logits, ElementsAre(2.0f, 98.0f, -0.5f));
}

TEST(SampleFromLogitsTest, InverseCdfOverIds) {
  std::vector<float> logits = LogitsOf({0.5, 0.3, 0.2});
  EXPECT_EQ(SampleFromLogits(logits, 0.1), 0);
  EXPECT_EQ(SampleFromLogits(logits, 0.49), 0);
  EXPECT_EQ(SampleFromLogits(logits, 0.6), 1);
  EXPECT_EQ(SampleFromLogits(logits, 0.85), 2);
  EXPECT_EQ(SampleFromLogits(logits, 0.999999), 2);
  logits[1] = -kInf;
  // Masked tokens are never drawn; the rest renormalise to 5/7 and 2/7.
  EXPECT_EQ(SampleFromLogits(logits, 0.7), 0);
  EXPECT_EQ(SampleFromLogits(logits, 0.72), 2);
}

TEST(SampleFromLogitsTest, SeededDrawsFollowTheDistribution) {
  std::vector<float> logits = LogitsOf({0.5, 0.3, 0.2});
  std::vector<int> counts(3);
  constexpr int kDraws = 20000;
  for (int step = 0; step < kDraws; ++step) ++counts[SampleFromLogits(logits, SeededUniform(1234, step))];
  EXPECT_NEAR(counts[0] / double{kDraws}, 0.5, 0.015);
  EXPECT_NEAR(counts[1] / double{kDraws}, 0.3, 0.015);
  EXPECT_NEAR(counts[2] / double{kDraws}, 0.2, 0.015);
}

Sequence MakeSeq(std::vector<int32_t> prompt, std::vector<int32_t> output, SamplingParams params,
                 uint64_t seed) {
  Sequence seq(1, std::move(prompt), std::move(params), seed);
  for (int32_t id : output) seq.AppendToken(id);
  return seq;
}

TEST(SamplerTest, GreedyTakesTheLowestIdOfThePenalisedMaximum) {
  SamplingParams params;
  params.temperature = 0.0f;
  Sampler sampler;
  std::vector<float> logits = {1.0f, 3.0f, 3.0f, 2.9f};
  EXPECT_EQ(sampler.Sample(logits, MakeSeq({0}, {}, params, 0)).token_id, 1);
  params.repetition_penalty = 1.1f;  // 3 / 1.1 < 2.9
  EXPECT_EQ(sampler.Sample(logits, MakeSeq({1, 2}, {}, params, 0)).token_id, 3);
  params.repetition_penalty = 1.0f;
  params.logit_bias = {{0, 5.0f}};
  EXPECT_EQ(sampler.Sample(logits, MakeSeq({1}, {}, params, 0)).token_id, 0);
}

// The lowest id of the maximum, infinities included; a NaN never wins wherever it lies (first of its chunk,
// first of all, inside a chunk), and a row of NaNs gets token 0 (torch.argmax's choice for it).
TEST(ArgmaxTest, InfinitiesCountAndNansNeverWin) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf("");
  std::vector<float> logits(5000, -1.0f);
  logits[4100] = 7.0f;
  logits[4200] = 7.0f;
  EXPECT_EQ(Argmax(logits), 4100);
  logits[4500] = nan;
  logits[2048] = nan;  // the first of the second chunk
  logits[0] = nan;
  EXPECT_EQ(Argmax(logits), 4100);
  logits[3000] = inf;
  EXPECT_EQ(Argmax(logits), 3000);
  EXPECT_EQ(Argmax(std::vector<float>(3000, -inf)), 0);
  std::vector<float> nans(3000, nan);
  EXPECT_EQ(Argmax(nans), 0);
  nans[2500] = -inf;
  EXPECT_EQ(Argmax(nans), 2500);
  EXPECT_EQ(Argmax(std::vector<float>{nan, 1.0f, nan, 5.0f}), 3);
}

TEST(SamplerTest, SameSeedSameTokensDifferentSeedDifferentTokens) {
  SamplingParams params;
  params.temperature = 1.0f;
  Sampler sampler;
  std::vector<float> logits(50, 0.0f);  // uniform over 50 ids
  auto draw = [&](uint64_t seed) {
    std::vector<int32_t> tokens;
    Sequence seq = MakeSeq({1}, {}, params, seed);
    for (int i = 0; i < 20; ++i) {
      tokens.push_back(sampler.Sample(logits, seq).token_id);
      seq.AppendToken(tokens.back());
    }
    return tokens;
  };
  EXPECT_EQ(draw(7), draw(7));
  EXPECT_NE(draw(7), draw(8));
}

TEST(SamplerTest, TemperatureSharpens) {
  // At temperature 0.5, probabilities (0.6, 0.4) become (0.36, 0.16) / 0.52: 0.6923 and 0.3077.
  std::vector<float> logits = LogitsOf({0.6, 0.4});
  std::vector<float> tempered = logits;
  ApplyTemperature(0.5f, absl::MakeSpan(tempered));
  const double log_z = LogSumExp(tempered);
  EXPECT_NEAR(std::exp(tempered[0] - log_z), 0.36 / 0.52, 1e-6);
}

TEST(SamplerTest, LogprobsAreTheRawLogSoftmaxWhateverTheProcessing) {
  SamplingParams params;
  params.temperature = 0.0f;
  params.logit_bias = {{2, 10.0f}};  // forces token 2; its logprob stays the model's
  params.logprobs = true;
  params.top_logprobs = 2;
  std::vector<float> logits = LogitsOf({0.5, 0.3, 0.2});
  SampleResult result = Sampler().Sample(logits, MakeSeq({0}, {}, params, 0));
  ASSERT_EQ(result.token_id, 2);
  ASSERT_TRUE(result.logprobs.has_value());
  EXPECT_EQ(result.logprobs->token_id, 2);
  EXPECT_NEAR(result.logprobs->logprob, std::log(0.2), 1e-6);
  ASSERT_EQ(result.logprobs->top.size(), 2u);
  EXPECT_EQ(result.logprobs->top[0].token_id, 0);
  EXPECT_NEAR(result.logprobs->top[0].value, std::log(0.5), 1e-6);
  EXPECT_EQ(result.logprobs->top[1].token_id, 1);
  EXPECT_NEAR(result.logprobs->top[1].value, std::log(0.3), 1e-6);
}

TEST(SamplerTest, TopLogitsOnlyForTheLastPromptPosition) {
  SamplingParams params;
  params.temperature = 0.0f;
  params.top_logits = 2;
  std::vector<float> logits = {1.0f, 4.0f, 2.0f, -1.0f};
  SampleResult first = Sampler().Sample(logits, MakeSeq({0}, {}, params, 0));
  ASSERT_TRUE(first.top_logits.has_value());
  EXPECT_THAT(first.top_logits->top, ::testing::SizeIs(2));
  EXPECT_EQ(first.top_logits->top[0].token_id, 1);
  EXPECT_EQ(first.top_logits->top[0].value, 4.0f);
  EXPECT_EQ(first.top_logits->top[1].token_id, 2);
  EXPECT_NEAR(first.top_logits->logsumexp,
              std::log(std::exp(1.0) + std::exp(4.0) + std::exp(2.0) + std::exp(-1.0)), 1e-6);
  EXPECT_FALSE(Sampler().Sample(logits, MakeSeq({0}, {1}, params, 0)).top_logits.has_value());
}

TEST(SamplerTest, PresencePenaltyCountsOutputTokensOnly) {
  SamplingParams params;
  params.temperature = 0.0f;
  params.presence_penalty = 2.0f;
  std::vector<float> logits = {3.0f, 2.0f, 0.0f};
  // Token 0 is in the prompt only: presence does not touch it.
  EXPECT_EQ(Sampler().Sample(logits, MakeSeq({0}, {}, params, 0)).token_id, 0);
  // In the output, it drops to 1.0, below token 1.
  EXPECT_EQ(Sampler().Sample(logits, MakeSeq({2}, {0}, params, 0)).token_id, 1);
}

}  // namespace
}  // namespace doze

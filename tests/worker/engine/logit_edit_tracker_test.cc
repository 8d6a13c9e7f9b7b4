// LogitEditTracker against the host Sampler's own penalty functions (worker/engine/logits_processor.h): after
// every appended token, the tracker's edits applied to a row equal logit bias, repetition penalty over prompt
// and output, and presence/frequency penalties over the output counts, applied the host's way.
#include "worker/engine/logit_edit_tracker.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "worker/engine/logits_processor.h"

namespace doze {
namespace {

constexpr int kVocab = 300;

struct Case {
  float repetition, presence, frequency;
  bool bias;
};

class LogitEditTrackerTest : public ::testing::TestWithParam<Case> {};

TEST_P(LogitEditTrackerTest, EqualsTheHostPenaltiesAfterEveryToken) {
  const Case c = GetParam();
  SamplingParams params;
  params.repetition_penalty = c.repetition;
  params.presence_penalty = c.presence;
  params.frequency_penalty = c.frequency;
  if (c.bias) params.logit_bias = {{3, 4.5f}, {17, -100.0f}, {250, 0.75f}};
  std::mt19937 rng(static_cast<uint32_t>(c.repetition * 100 + c.presence * 10 + c.frequency));
  std::uniform_int_distribution<int32_t> token(0, kVocab / 3);  // repeats in prompt and output
  std::normal_distribution<float> logit(0.f, 3.f);
  std::vector<int32_t> tokens;
  const int num_prompt = 40;
  for (int i = 0; i < num_prompt; ++i) tokens.push_back(token(rng));
  LogitEditTracker tracker;
  for (int step = 0; step < 60; ++step) {
    std::vector<float> raw(kVocab);
    for (float& x : raw) x = logit(rng);
    std::vector<float> want = raw, got = raw;
    absl::flat_hash_map<int32_t, int> counts;
    for (size_t i = num_prompt; i < tokens.size(); ++i) ++counts[tokens[i]];
    ApplyLogitBias(params.logit_bias, absl::MakeSpan(want));
    ApplyRepetitionPenalty(params.repetition_penalty, tokens, absl::MakeSpan(want));
    ApplyPresenceFrequencyPenalties(params.presence_penalty, params.frequency_penalty, counts,
                                    absl::MakeSpan(want));
    ApplyLogitEdits(tracker.Update(params, tokens, num_prompt, counts), absl::MakeSpan(got));
    ASSERT_EQ(got, want) << "after " << step << " output tokens";
    tokens.push_back(token(rng));
  }
}

INSTANTIATE_TEST_SUITE_P(Penalties, LogitEditTrackerTest,
                         ::testing::Values(Case{1.3f, 0.f, 0.f, false}, Case{1.f, 0.5f, 0.f, false},
                                           Case{1.f, 0.f, 0.25f, false}, Case{0.8f, -0.4f, 0.7f, true},
                                           Case{1.f, 0.f, 0.f, true}));

}  // namespace
}  // namespace doze

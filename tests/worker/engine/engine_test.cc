#include "worker/engine/engine.h"

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/worker/engine/fake_model_runner.h"
#include "tests/worker/engine/fake_text_decoder.h"
#include "worker/engine/logits_processor.h"

namespace doze {
namespace {

using ::testing::HasSubstr;

constexpr int kVocab = 128;  // byte-level ASCII: one token, one character

// Everything a request produced, gathered over the steps.
struct Generated {
  std::vector<int32_t> tokens;
  std::string text;
  FinishReason finish_reason = FinishReason::kNone;
  Usage usage;
  std::vector<TokenLogprobs> logprobs;
  int num_top_logits = 0;
  int num_finished_outputs = 0;
};

struct Options {
  int num_blocks = 256;
  int block_size = 16;
  int max_position_embeddings = 4096;
  EngineConfig config;
};

// A fake runner, a byte decoder and an engine over them.
class Harness {
 public:
  explicit Harness(Options options = {})
      : runner_(kVocab, options.num_blocks, options.block_size, options.max_position_embeddings),
        engine_(&runner_, &decoders_, WithSeed(options.config)) {}

  Engine& engine() { return engine_; }
  FakeModelRunner& runner() { return runner_; }

  uint64_t Add(std::vector<int32_t> prompt, SamplingParams params) {
    absl::StatusOr<uint64_t> id = engine_.AddRequest(std::move(prompt), std::move(params));
    EXPECT_TRUE(id.ok()) << id.status();
    return id.value_or(0);
  }

  // Records one step's outputs.
  void Collect(const std::vector<RequestOutput>& outputs) {
    for (const RequestOutput& out : outputs) {
      Generated& g = results_[out.id];
      EXPECT_EQ(g.num_finished_outputs, 0) << "output after finishing";
      g.tokens.insert(g.tokens.end(), out.new_token_ids.begin(), out.new_token_ids.end());
      g.text += out.text_delta;
      g.logprobs.insert(g.logprobs.end(), out.logprobs.begin(), out.logprobs.end());
      g.num_top_logits += out.prompt_top_logits.has_value() ? 1 : 0;
      g.usage = out.usage;
      if (out.finished) {
        g.finish_reason = out.finish_reason;
        ++g.num_finished_outputs;
      }
    }
  }

  // Steps until nothing is left; checks the pool is empty then.
  std::map<uint64_t, Generated> RunToCompletion() {
    for (int step = 0; engine_.HasUnfinished() && step < 100000; ++step) Collect(engine_.Step());
    EXPECT_FALSE(engine_.HasUnfinished());
    EXPECT_EQ(engine_.counters().kv_blocks_used, 0);
    return std::exchange(results_, {});
  }

  std::map<uint64_t, Generated>& results() { return results_; }

 private:
  static EngineConfig WithSeed(EngineConfig config) {
    if (!config.seed.has_value()) config.seed = 99;
    return config;
  }

  FakeModelRunner runner_;
  FakeByteDecoderFactory decoders_;
  Engine engine_;
  std::map<uint64_t, Generated> results_;
};

std::vector<int32_t> RandomPrompt(std::mt19937& rng, int length) {
  std::uniform_int_distribution<int32_t> token(32, kVocab - 1);
  std::vector<int32_t> prompt(length);
  for (int32_t& t : prompt) t = token(rng);
  return prompt;
}

struct Request {
  std::vector<int32_t> prompt;
  SamplingParams params;
};

// A mix of lengths (one token to a few blocks), greedy and seeded sampling, and output budgets.
std::vector<Request> MixedRequests(int count) {
  std::mt19937 rng(5);
  std::vector<Request> requests;
  for (int i = 0; i < count; ++i) {
    Request r;
    r.prompt = RandomPrompt(rng, 1 + (i * 37) % 100);
    r.params.max_tokens = 1 + (i * 13) % 40;
    if (i % 2 == 1) {
      r.params.temperature = 0.8f;
      r.params.top_k = 20;
      r.params.top_p = 0.9f;
      r.params.seed = 1000 + i;
    } else {
      r.params.temperature = 0.0f;
    }
    requests.push_back(std::move(r));
  }
  return requests;
}

Generated RunAlone(const Request& request) {
  Harness harness;
  uint64_t id = harness.Add(request.prompt, request.params);
  return harness.RunToCompletion().at(id);
}

void ExpectSameAsAlone(const std::vector<Request>& requests, const std::vector<uint64_t>& ids,
                       const std::map<uint64_t, Generated>& batched) {
  for (size_t i = 0; i < requests.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    const Generated alone = RunAlone(requests[i]);
    const Generated& together = batched.at(ids[i]);
    EXPECT_EQ(together.tokens, alone.tokens);
    EXPECT_EQ(together.text, alone.text);
    EXPECT_EQ(together.finish_reason, FinishReason::kLength);
    EXPECT_EQ(together.num_finished_outputs, 1);
    EXPECT_EQ(static_cast<int>(together.tokens.size()), requests[i].params.max_tokens);
  }
}

TEST(EngineTest, ManyPromptsTogetherEqualEachAlone) {
  // A 64-token budget cuts the longer prompts into chunks that share steps with the others' decodes.
  Options options;
  options.config.max_num_batched_tokens = 64;
  Harness harness(options);
  std::vector<Request> requests = MixedRequests(16);
  std::vector<uint64_t> ids;
  for (const Request& r : requests) ids.push_back(harness.Add(r.prompt, r.params));
  std::map<uint64_t, Generated> batched = harness.RunToCompletion();
  EXPECT_LE(harness.runner().max_batch_tokens(), 64);
  EXPECT_EQ(harness.engine().counters().num_preemptions, 0);
  ExpectSameAsAlone(requests, ids, batched);
}

TEST(EngineTest, PreemptionRecomputesToTheSameOutput) {
  // 12 blocks of 16 tokens: every request fits alone (at most 100 + 40 tokens), not all together.
  Options options;
  options.num_blocks = 12;
  Harness harness(options);
  std::vector<Request> requests = MixedRequests(16);
  std::vector<uint64_t> ids;
  for (const Request& r : requests) ids.push_back(harness.Add(r.prompt, r.params));
  std::map<uint64_t, Generated> batched = harness.RunToCompletion();
  EXPECT_GT(harness.engine().counters().num_preemptions, 0);
  ExpectSameAsAlone(requests, ids, batched);
}

TEST(EngineTest, RepeatedPromptComputesOnlyItsUncachedTokens) {
  Harness harness;
  std::mt19937 rng(1);
  const std::vector<int32_t> prompt = RandomPrompt(rng, 40);
  SamplingParams params;
  params.temperature = 0.0f;
  params.max_tokens = 5;
  uint64_t first = harness.Add(prompt, params);
  Generated a = harness.RunToCompletion().at(first);
  EXPECT_EQ(harness.runner().num_computed_tokens(), 40 + 4);  // the prompt, then 4 decodes
  EXPECT_EQ(a.usage.cached_tokens, 0);

  uint64_t second = harness.Add(prompt, params);
  Generated b = harness.RunToCompletion().at(second);
  EXPECT_EQ(b.tokens, a.tokens);
  EXPECT_EQ(b.usage.cached_tokens, 32);  // two full blocks; the third holds the last prompt token
  EXPECT_EQ(harness.runner().num_computed_tokens(), 44 + 8 + 4);
  EngineCounters c = harness.engine().counters();
  EXPECT_EQ(c.prefix_cache_queried_tokens, 80);
  EXPECT_EQ(c.prefix_cache_hit_tokens, 32);
  EXPECT_DOUBLE_EQ(c.prefix_cache_hit_rate, 0.4);
  EXPECT_EQ(c.prompt_tokens, 80);
  EXPECT_EQ(c.generated_tokens, 10);
}

TEST(EngineTest, SystemPromptIsComputedOnceThenHit) {
  Harness harness;
  std::mt19937 rng(2);
  const std::vector<int32_t> system_prompt = RandomPrompt(rng, 48);
  SamplingParams params;
  params.max_tokens = 3;
  params.seed = 1;
  for (int i = 0; i < 4; ++i) {
    std::vector<int32_t> prompt = system_prompt;
    for (int32_t t : RandomPrompt(rng, 10)) prompt.push_back(t);
    const int64_t computed_before = harness.runner().num_computed_tokens();
    uint64_t id = harness.Add(prompt, params);
    Generated g = harness.RunToCompletion().at(id);
    EXPECT_EQ(g.usage.cached_tokens, i == 0 ? 0 : 48);
    EXPECT_EQ(harness.runner().num_computed_tokens() - computed_before, (i == 0 ? 58 : 10) + 2);
  }
}

TEST(EngineTest, SeededSamplingReproducesAloneAndInABatch) {
  std::mt19937 rng(3);
  const std::vector<int32_t> prompt = RandomPrompt(rng, 20);
  SamplingParams seeded;
  seeded.temperature = 1.0f;
  seeded.max_tokens = 30;
  seeded.seed = 42;
  Generated alone = RunAlone({prompt, seeded});
  EXPECT_EQ(RunAlone({prompt, seeded}).tokens, alone.tokens);

  Harness harness;
  SamplingParams unseeded;
  unseeded.max_tokens = 20;
  for (int i = 0; i < 3; ++i) harness.Add(RandomPrompt(rng, 5 + i * 30), unseeded);
  uint64_t id = harness.Add(prompt, seeded);
  for (int i = 0; i < 3; ++i) harness.Add(RandomPrompt(rng, 7 + i * 11), unseeded);
  EXPECT_EQ(harness.RunToCompletion().at(id).tokens, alone.tokens);

  seeded.seed = 43;
  EXPECT_NE(RunAlone({prompt, seeded}).tokens, alone.tokens);
}

// A temperature too small to divide the logits by (1e-40 is a denormal: logits / t overflow) samples as
// temperature 0 does, as does any below kMinSamplingTemperature.
TEST(EngineTest, TemperatureBelowTheMinimumIsGreedy) {
  std::mt19937 rng(5);
  const std::vector<int32_t> prompt = RandomPrompt(rng, 20);
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  greedy.max_tokens = 30;
  const Generated want = RunAlone({prompt, greedy});
  for (float tiny : {1e-40f, 1e-30f, 0.5f * kMinSamplingTemperature}) {
    SamplingParams params = greedy;
    params.temperature = tiny;
    params.seed = 7;
    EXPECT_EQ(RunAlone({prompt, params}).tokens, want.tokens) << "temperature " << tiny;
  }
}

TEST(EngineTest, AbortFreesBlocksAtOnce) {
  Harness harness;
  std::mt19937 rng(4);
  SamplingParams params;
  params.max_tokens = 100;
  uint64_t running = harness.Add(RandomPrompt(rng, 40), params);
  for (int i = 0; i < 3; ++i) harness.Collect(harness.engine().Step());
  uint64_t waiting = harness.Add(RandomPrompt(rng, 40), params);
  EXPECT_EQ(harness.engine().counters().kv_blocks_used, 3);
  EXPECT_EQ(harness.engine().counters().num_waiting, 1);

  harness.engine().Abort(running);
  harness.engine().Abort(waiting);
  harness.engine().Abort(12345);  // unknown: ignored
  EngineCounters c = harness.engine().counters();
  EXPECT_EQ(c.kv_blocks_used, 0);
  EXPECT_EQ(c.num_running, 0);
  EXPECT_EQ(c.num_waiting, 0);
  EXPECT_TRUE(harness.engine().HasUnfinished());  // the abort outputs are still to be returned

  std::map<uint64_t, Generated> results = harness.RunToCompletion();
  EXPECT_EQ(results.at(running).finish_reason, FinishReason::kAbort);
  EXPECT_EQ(results.at(running).tokens.size(), 3u);
  EXPECT_EQ(results.at(waiting).finish_reason, FinishReason::kAbort);
  EXPECT_EQ(results.at(waiting).usage.completion_tokens, 0);
}

TEST(EngineTest, RequestThatCanNeverFitIsRejectedAtAdmission) {
  Options options;
  options.num_blocks = 4;
  options.max_position_embeddings = 128;
  Harness harness(options);
  SamplingParams params;
  params.max_tokens = 40;
  absl::StatusOr<uint64_t> too_long = harness.engine().AddRequest(std::vector<int32_t>(100, 65), params);
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_long.status().message(), HasSubstr("= 140 tokens exceeds the model's context of 128"));

  params.max_tokens = 20;
  absl::StatusOr<uint64_t> too_big = harness.engine().AddRequest(std::vector<int32_t>(50, 65), params);
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_big.status().message(), HasSubstr("needs 5 KV blocks of 16 tokens; the KV pool has 4"));

  params.top_p = 0.0f;
  EXPECT_THAT(harness.engine().AddRequest({65}, params).status().message(), HasSubstr("top_p"));
  EXPECT_THAT(harness.engine().AddRequest({}, SamplingParams{}).status().message(), HasSubstr("prompt"));
  EXPECT_THAT(harness.engine().AddRequest({kVocab}, SamplingParams{}).status().message(),
              HasSubstr("token id"));
  EXPECT_FALSE(harness.engine().HasUnfinished());
}

TEST(EngineTest, StopStringAcrossTokensEndsTheTextBeforeIt) {
  std::mt19937 rng(6);
  const std::vector<int32_t> prompt = RandomPrompt(rng, 12);
  SamplingParams params;
  params.temperature = 0.0f;
  params.max_tokens = 30;
  const Generated full = RunAlone({prompt, params});
  ASSERT_EQ(full.text.size(), 30u);  // one character per token
  const std::string stop = full.text.substr(10, 3);
  const size_t at = full.text.find(stop);

  params.stop = {stop};
  const Generated stopped = RunAlone({prompt, params});
  EXPECT_EQ(stopped.finish_reason, FinishReason::kStop);
  EXPECT_EQ(stopped.text, full.text.substr(0, at));
  EXPECT_EQ(stopped.tokens, std::vector<int32_t>(full.tokens.begin(), full.tokens.begin() + at + 3));
}

TEST(EngineTest, EosEndsUnlessIgnored) {
  std::mt19937 rng(7);
  const std::vector<int32_t> prompt = RandomPrompt(rng, 12);
  SamplingParams params;
  params.temperature = 0.0f;
  params.max_tokens = 30;
  const Generated full = RunAlone({prompt, params});
  const int32_t eos = full.tokens[6];
  const size_t first = std::find(full.tokens.begin(), full.tokens.end(), eos) - full.tokens.begin();

  Options options;
  options.config.eos_token_ids = {eos};
  Harness harness(options);
  uint64_t stops = harness.Add(prompt, params);
  params.ignore_eos = true;
  uint64_t ignores = harness.Add(prompt, params);
  std::map<uint64_t, Generated> results = harness.RunToCompletion();
  EXPECT_EQ(results.at(stops).finish_reason, FinishReason::kStop);
  EXPECT_EQ(results.at(stops).tokens,
            std::vector<int32_t>(full.tokens.begin(), full.tokens.begin() + first + 1));
  EXPECT_EQ(results.at(stops).text, full.text.substr(0, first));
  EXPECT_EQ(results.at(ignores).tokens, full.tokens);
  EXPECT_EQ(results.at(ignores).finish_reason, FinishReason::kLength);
}

TEST(EngineTest, LongPromptNeverStallsDecoding) {
  Options options;
  options.config.max_num_batched_tokens = 32;
  Harness harness(options);
  std::mt19937 rng(8);
  SamplingParams params;
  params.max_tokens = 60;
  uint64_t decoding = harness.Add(RandomPrompt(rng, 10), params);
  harness.Collect(harness.engine().Step());
  uint64_t long_prompt = harness.Add(RandomPrompt(rng, 300), params);
  // 300 prompt tokens at 31 a step: ten steps of prefill, each also decoding a token of the first request.
  for (int step = 0; step < 10; ++step) {
    const size_t before = harness.results()[decoding].tokens.size();
    harness.Collect(harness.engine().Step());
    EXPECT_EQ(harness.results()[decoding].tokens.size(), before + 1) << "step " << step;
    EXPECT_EQ(harness.results()[long_prompt].tokens.size(), step == 9 ? 1u : 0u) << "step " << step;
  }
  EXPECT_LE(harness.runner().max_batch_tokens(), 32);
  harness.RunToCompletion();
}

TEST(EngineTest, LogprobsAreTheModelsRawLogSoftmax) {
  std::mt19937 rng(9);
  const std::vector<int32_t> prompt = RandomPrompt(rng, 7);
  SamplingParams params;
  params.temperature = 0.7f;
  params.seed = 3;
  params.presence_penalty = 1.0f;
  params.max_tokens = 5;
  params.logprobs = true;
  params.top_logprobs = 3;
  params.top_logits = 4;
  const Generated g = RunAlone({prompt, params});
  ASSERT_EQ(g.logprobs.size(), 5u);
  EXPECT_EQ(g.num_top_logits, 1);
  std::vector<int32_t> context = prompt;
  for (size_t i = 0; i < g.tokens.size(); ++i) {
    std::vector<float> logits = FakeModelRunner::LogitsAfter(context, kVocab);
    const double log_z = LogSumExp(logits);
    EXPECT_EQ(g.logprobs[i].token_id, g.tokens[i]);
    EXPECT_NEAR(g.logprobs[i].logprob, logits[g.tokens[i]] - log_z, 1e-5);
    ASSERT_EQ(g.logprobs[i].top.size(), 3u);
    EXPECT_EQ(g.logprobs[i].top[0].token_id, Argmax(logits));
    EXPECT_GE(g.logprobs[i].top[0].value, g.logprobs[i].top[1].value);
    context.push_back(g.tokens[i]);
  }
}

TEST(EngineTest, MaxNumSeqsBoundsTheRunningSet) {
  Options options;
  options.config.max_num_seqs = 3;
  Harness harness(options);
  std::vector<Request> requests = MixedRequests(10);
  for (const Request& r : requests) harness.Add(r.prompt, r.params);
  while (harness.engine().HasUnfinished()) {
    harness.Collect(harness.engine().Step());
    EXPECT_LE(harness.engine().counters().num_running, 3);
  }
  EXPECT_EQ(harness.results().size(), 10u);
}

}  // namespace
}  // namespace doze

// The engine over a runner that samples on the device: the same tokens as host sampling, and host sampling
// for every step that holds a row the device cannot take.
#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/worker/engine/fake_device_sampling_runner.h"
#include "tests/worker/engine/fake_text_decoder.h"
#include "worker/engine/engine.h"

namespace doze {
namespace {

constexpr int kVocab = 128;
constexpr int kBlocks = 256;

struct Request {
  std::vector<int32_t> prompt;
  SamplingParams params;
};

// How a run ends each request: its tokens and finish reason.
struct Result {
  std::vector<int32_t> tokens;
  FinishReason reason = FinishReason::kNone;
  bool operator==(const Result& other) const { return tokens == other.tokens && reason == other.reason; }
};

// Runs `requests` together to completion on `runner` with `config`; after step `abort_step` (if >= 0) aborts
// the requests at the indices in `aborts`. The result of each, in order of `requests`.
std::vector<Result> RunAll(ModelRunner& runner, const std::vector<Request>& requests, EngineConfig config,
                           int abort_step = -1, const std::vector<size_t>& aborts = {},
                           EngineCounters* counters = nullptr) {
  FakeByteDecoderFactory decoders;
  config.seed = 99;
  config.max_num_batched_tokens = 64;
  Engine engine(&runner, &decoders, config);
  std::map<uint64_t, size_t> index;
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < requests.size(); ++i) {
    absl::StatusOr<uint64_t> id = engine.AddRequest(requests[i].prompt, requests[i].params);
    EXPECT_TRUE(id.ok()) << id.status();
    index[*id] = i;
    ids.push_back(*id);
  }
  std::vector<Result> results(requests.size());
  for (int step = 0; engine.HasUnfinished() && step < 10000; ++step) {
    for (const RequestOutput& out : engine.Step()) {
      Result& r = results[index.at(out.id)];
      EXPECT_EQ(r.reason, FinishReason::kNone) << "an output after the request finished";
      r.tokens.insert(r.tokens.end(), out.new_token_ids.begin(), out.new_token_ids.end());
      if (out.finished) r.reason = out.finish_reason;
    }
    if (step == abort_step) {
      for (size_t i : aborts) engine.Abort(ids[i]);
    }
  }
  EXPECT_FALSE(engine.HasUnfinished());
  if (counters != nullptr) *counters = engine.counters();
  EXPECT_EQ(engine.counters().kv_blocks_used, 0) << "blocks left after every request finished";
  return results;
}

// The tokens of each request of RunAll with the default configuration.
std::vector<std::vector<int32_t>> Generate(ModelRunner& runner, const std::vector<Request>& requests) {
  std::vector<std::vector<int32_t>> tokens;
  for (Result& r : RunAll(runner, requests, EngineConfig{})) tokens.push_back(std::move(r.tokens));
  return tokens;
}

// Greedy, plain temperature, top-k, top-p, min-p and all at once, seeded or seeded by the engine.
std::vector<Request> DeviceableRequests(int count) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int32_t> token(32, kVocab - 1);
  std::vector<Request> requests;
  for (int i = 0; i < count; ++i) {
    Request r;
    for (int n = 0; n < 1 + (i * 29) % 90; ++n) r.prompt.push_back(token(rng));
    r.params.max_tokens = 5 + (i * 7) % 30;
    r.params.temperature = i % 6 == 0 ? 0.0f : 0.5f + 0.1f * (i % 7);
    if (i % 6 == 2 || i % 6 == 5) r.params.top_k = 5 + i;
    if (i % 6 == 3 || i % 6 == 5) r.params.top_p = 0.8f;
    if (i % 6 == 4 || i % 6 == 5) r.params.min_p = 0.05f;
    if (i % 2 == 1) r.params.seed = 500 + i;
    requests.push_back(std::move(r));
  }
  return requests;
}

TEST(EngineDeviceSamplingTest, GreedyAndSeededTokensEqualTheHostPath) {
  const std::vector<Request> requests = DeviceableRequests(18);
  FakeModelRunner host(kVocab, kBlocks);
  FakeDeviceSamplingRunner device(kVocab, kBlocks);
  EXPECT_EQ(Generate(device, requests), Generate(host, requests));
  EXPECT_GT(device.num_device_steps(), 0);
  EXPECT_EQ(device.num_host_steps(), 0);
}

// Asynchronous scheduling: each step is submitted before the previous one's tokens are collected, its decode
// rows reading them on the "device". The tokens and finish reasons equal those of steps run one at a time and
// of host sampling, with stop tokens finishing requests while their next step is in flight; a request is
// never scheduled past its max_tokens.
TEST(EngineDeviceSamplingTest, AsyncSchedulingRunsAheadWithTheSameTokens) {
  std::vector<Request> requests = DeviceableRequests(18);
  requests[3].params.max_tokens = 1;
  EngineConfig config;
  config.eos_token_ids = {40, 41, 42, 43, 44, 45};  // about one token in 20: some requests stop early
  FakeModelRunner host(kVocab, kBlocks);
  FakeDeviceSamplingRunner sync(kVocab, kBlocks, /*async_sampling=*/false);
  FakeDeviceSamplingRunner async(kVocab, kBlocks);
  const std::vector<Result> expected = RunAll(host, requests, config);
  EXPECT_EQ(RunAll(sync, requests, config), expected);
  EXPECT_EQ(RunAll(async, requests, config), expected);
  int stopped = 0;
  for (const Result& r : expected) stopped += r.reason == FinishReason::kStop;
  EXPECT_GE(stopped, 3) << "the test wants requests that stop on a token";
  EXPECT_EQ(sync.num_steps_ahead(), 0);
  EXPECT_GT(async.num_steps_ahead(), async.num_device_steps() / 2);
  EXPECT_GT(async.num_sourced_rows(), 100);
  // The rows wasted on requests that stopped while their next step was in flight, and nothing else.
  EXPECT_LE(async.num_computed_tokens() - sync.num_computed_tokens(), stopped);
  // A request is not scheduled past its max_tokens: its prompt and every output token but the last run once.
  for (int max_tokens : {1, 5}) {
    Request one = requests[4];
    one.params.max_tokens = max_tokens;
    FakeDeviceSamplingRunner alone(kVocab, kBlocks);
    const std::vector<Result> result = RunAll(alone, {one}, EngineConfig{});
    ASSERT_EQ(result[0].tokens.size(), static_cast<size_t>(max_tokens));
    EXPECT_EQ(alone.num_computed_tokens(), static_cast<int64_t>(one.prompt.size()) + max_tokens - 1);
  }
}

// Aborts while a step that holds the aborted requests is in flight, and preemptions in a pool too small for
// every request at once: the other requests' tokens are unchanged, the aborted ones end with their tokens so
// far, and every block comes back.
TEST(EngineDeviceSamplingTest, AsyncSchedulingSurvivesAbortsAndPreemption) {
  const std::vector<Request> requests = DeviceableRequests(12);
  FakeModelRunner host(kVocab, kBlocks);
  const std::vector<Result> expected = RunAll(host, requests, EngineConfig{});
  FakeDeviceSamplingRunner async(kVocab, kBlocks);
  const std::vector<Result> aborted = RunAll(async, requests, EngineConfig{}, /*abort_step=*/6, {2, 7});
  for (size_t i = 0; i < requests.size(); ++i) {
    if (i == 2 || i == 7) {
      EXPECT_EQ(aborted[i].reason, FinishReason::kAbort) << i;
      ASSERT_LE(aborted[i].tokens.size(), expected[i].tokens.size()) << i;
      EXPECT_TRUE(std::equal(aborted[i].tokens.begin(), aborted[i].tokens.end(), expected[i].tokens.begin()))
          << i;
    } else {
      EXPECT_EQ(aborted[i], expected[i]) << i;
    }
  }
  EXPECT_GT(async.num_steps_ahead(), 0);

  constexpr int kSmallPool = 12;  // blocks of 16 tokens: a few requests at a time
  FakeModelRunner small_host(kVocab, kSmallPool);
  FakeDeviceSamplingRunner small_async(kVocab, kSmallPool);
  const std::vector<Result> small_expected = RunAll(small_host, requests, EngineConfig{});
  EngineCounters counters;
  EXPECT_EQ(RunAll(small_async, requests, EngineConfig{}, -1, {}, &counters), small_expected);
  EXPECT_GT(counters.num_preemptions, 0) << "the pool should be too small for every request at once";
  EXPECT_GT(small_async.num_steps_ahead(), 0);
}

// Logit bias, repetition, presence and frequency penalties, alone and together, greedy and sampled: the
// device path applies them as edits and picks the host path's tokens.
TEST(EngineDeviceSamplingTest, PenaltiesAndLogitBiasEqualTheHostPath) {
  std::vector<Request> requests = DeviceableRequests(12);
  for (size_t i = 0; i < requests.size(); ++i) {
    SamplingParams& p = requests[i].params;
    p.max_tokens = 24;
    if (i % 4 == 0 || i % 4 == 3) p.repetition_penalty = i % 8 == 0 ? 1.5f : 0.8f;
    if (i % 4 == 1 || i % 4 == 3) p.presence_penalty = 0.7f;
    if (i % 4 == 2 || i % 4 == 3) p.frequency_penalty = i % 8 == 2 ? 0.4f : -0.3f;
    if (i % 3 == 0) p.logit_bias = {{40, 5.0f}, {41, -100.0f}, {static_cast<int32_t>(50 + i), 2.5f}};
  }
  FakeModelRunner host(kVocab, kBlocks);
  FakeDeviceSamplingRunner device(kVocab, kBlocks);
  const std::vector<std::vector<int32_t>> tokens = Generate(device, requests);
  EXPECT_EQ(tokens, Generate(host, requests));
  EXPECT_GT(device.num_device_steps(), 0);
  EXPECT_EQ(device.num_host_steps(), 0);
  EXPECT_EQ(device.num_steps_ahead(), 0) << "edits depend on the tokens so far: no step runs ahead";
  std::vector<Request> unpenalised = DeviceableRequests(12);
  for (Request& r : unpenalised) r.params.max_tokens = 24;
  FakeDeviceSamplingRunner plain(kVocab, kBlocks);
  const std::vector<std::vector<int32_t>> plain_tokens = Generate(plain, unpenalised);
  int changed = 0;
  for (size_t i = 0; i < tokens.size(); ++i) changed += tokens[i] != plain_tokens[i];
  EXPECT_GE(changed, 8) << "the penalties should change most requests' tokens";
}

TEST(EngineDeviceSamplingTest, AHostOnlyRowTakesItsStepsToTheHost) {
  std::vector<Request> requests = DeviceableRequests(4);
  Request with_logprobs = requests[1];
  with_logprobs.params.logprobs = true;
  with_logprobs.params.max_tokens = 3;  // shorter than the others: later steps go back to the device
  requests.push_back(with_logprobs);
  FakeModelRunner host(kVocab, kBlocks);
  FakeDeviceSamplingRunner device(kVocab, kBlocks);
  EXPECT_EQ(Generate(device, requests), Generate(host, requests));
  EXPECT_GE(device.num_host_steps(), 3);
  EXPECT_GT(device.num_device_steps(), 0);
}

TEST(EngineDeviceSamplingTest, LogprobsAndFirstTokenTopLogitsStayOnTheHost) {
  std::vector<Request> requests = DeviceableRequests(1);
  requests[0].params.max_tokens = 6;
  requests[0].params.top_logits = 3;  // the first output token only
  FakeDeviceSamplingRunner device(kVocab, kBlocks);
  FakeModelRunner host(kVocab, kBlocks);
  EXPECT_EQ(Generate(device, requests), Generate(host, requests));
  EXPECT_EQ(device.num_host_steps(), 1);
  EXPECT_EQ(device.num_device_steps(), 5);

  requests[0].params.top_logits = 0;
  requests[0].params.logprobs = true;
  FakeDeviceSamplingRunner logprobs(kVocab, kBlocks);
  Generate(logprobs, requests);
  EXPECT_EQ(logprobs.num_device_steps(), 0);
}

}  // namespace
}  // namespace doze

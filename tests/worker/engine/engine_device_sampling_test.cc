// The engine over a runner that samples on the device: the same tokens as host sampling, and host sampling
// for every step that holds a row the device cannot take.
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

// Runs `requests` together to completion on `runner`; the tokens of each, in order of `requests`.
std::vector<std::vector<int32_t>> Generate(ModelRunner& runner, const std::vector<Request>& requests) {
  FakeByteDecoderFactory decoders;
  EngineConfig config;
  config.seed = 99;
  config.max_num_batched_tokens = 64;
  Engine engine(&runner, &decoders, config);
  std::map<uint64_t, size_t> index;
  for (size_t i = 0; i < requests.size(); ++i) {
    absl::StatusOr<uint64_t> id = engine.AddRequest(requests[i].prompt, requests[i].params);
    EXPECT_TRUE(id.ok()) << id.status();
    index[*id] = i;
  }
  std::vector<std::vector<int32_t>> tokens(requests.size());
  for (int step = 0; engine.HasUnfinished() && step < 10000; ++step) {
    for (const RequestOutput& out : engine.Step()) {
      std::vector<int32_t>& t = tokens[index.at(out.id)];
      t.insert(t.end(), out.new_token_ids.begin(), out.new_token_ids.end());
    }
  }
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

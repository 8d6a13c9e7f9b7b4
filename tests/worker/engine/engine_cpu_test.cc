// The engine over the CPU reference backend and a tiny random Qwen2 model: batching, chunked prefill,
// preemption and the prefix cache must not change a single token.
#include <map>
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "tests/worker/backend/tiny_model.h"
#include "tests/worker/engine/fake_text_decoder.h"
#include "worker/backend/cpu/cpu_model_runner.h"
#include "worker/engine/engine.h"

namespace doze {
namespace {

struct Request {
  std::vector<int32_t> prompt;
  SamplingParams params;
};

class EngineCpuTest : public ::testing::Test {
 protected:
  EngineCpuTest() : model_(testing::TinyConfig(), DType::kBF16, 11) {}

  std::unique_ptr<CpuModelRunner> NewRunner(int num_kv_blocks) {
    return std::make_unique<CpuModelRunner>(model_.config(), model_.weights(),
                                            CpuRunnerOptions{num_kv_blocks, 16, 2});
  }

  // Runs `requests` together on an engine over a pool of `num_kv_blocks`; returns each one's tokens.
  std::vector<std::vector<int32_t>> Generate(const std::vector<Request>& requests, int num_kv_blocks,
                                             EngineConfig config, EngineCounters* counters = nullptr) {
    std::unique_ptr<CpuModelRunner> runner = NewRunner(num_kv_blocks);
    config.seed = 5;
    Engine engine(runner.get(), &decoders_, config);
    std::vector<uint64_t> ids;
    for (const Request& r : requests) ids.push_back(engine.AddRequest(r.prompt, r.params).value());
    std::map<uint64_t, std::vector<int32_t>> tokens;
    while (engine.HasUnfinished()) {
      for (const RequestOutput& out : engine.Step()) {
        tokens[out.id].insert(tokens[out.id].end(), out.new_token_ids.begin(), out.new_token_ids.end());
      }
    }
    if (counters != nullptr) *counters = engine.counters();
    std::vector<std::vector<int32_t>> result;
    for (uint64_t id : ids) result.push_back(tokens[id]);
    return result;
  }

  std::vector<Request> Requests() const {
    std::vector<Request> requests;
    for (int i = 0; i < 8; ++i) {
      Request r;
      r.prompt = testing::RandomTokens(1 + i * 9, model_.config().vocab_size, 100 + i);
      r.params.max_tokens = 8 + i * 2;
      r.params.temperature = i % 2 == 0 ? 0.0f : 0.9f;
      r.params.seed = i;
      requests.push_back(std::move(r));
    }
    return requests;
  }

  testing::TinyModel model_;
  FakeByteDecoderFactory decoders_;
};

TEST_F(EngineCpuTest, BatchedChunkedAndPreemptedEqualAlone) {
  const std::vector<Request> requests = Requests();
  std::vector<std::vector<int32_t>> alone;
  for (const Request& r : requests) alone.push_back(Generate({r}, 64, EngineConfig{})[0]);

  EngineConfig chunked;
  chunked.max_num_batched_tokens = 24;
  EXPECT_EQ(Generate(requests, 64, chunked), alone);

  EngineCounters counters;
  EXPECT_EQ(Generate(requests, 6, EngineConfig{}, &counters), alone);  // 96 slots for up to 64 + 22 tokens
  EXPECT_GT(counters.num_preemptions, 0);
}

TEST_F(EngineCpuTest, PrefixCacheHitGivesTheSameTokens) {
  Request r;
  r.prompt = testing::RandomTokens(50, model_.config().vocab_size, 7);
  r.params.temperature = 0.0f;
  r.params.max_tokens = 12;
  EngineConfig one_at_a_time;
  one_at_a_time.max_num_seqs = 1;
  EngineCounters counters;
  std::vector<std::vector<int32_t>> twice = Generate({r, r}, 64, one_at_a_time, &counters);
  EXPECT_EQ(twice[0], twice[1]);
  EXPECT_EQ(counters.prefix_cache_hit_tokens, 48);
}

}  // namespace
}  // namespace doze

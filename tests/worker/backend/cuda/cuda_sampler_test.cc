// CudaModelRunner::ForwardAndSample against Forward + the host Sampler's functions on the same step: the
// device path must pick the tokens the engine's host path would, logit edits (penalties, bias) included; and
// steps submitted ahead (SubmitForwardAndSample) against the same steps one at a time.
// Skips without a GPU.
#include <cuda_runtime.h>

#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "tests/worker/backend/cuda/gpu_tiny_model.h"
#include "tests/worker/backend/tiny_model.h"
#include "worker/backend/cuda/cuda_model_runner.h"
#include "worker/engine/logits_processor.h"
#include "worker/engine/sampler.h"

namespace doze {
namespace {

using testing::MakeBatch;
using testing::RandomTokens;
using testing::SeqStep;

constexpr int kBlockSize = 16;

// Row i's settings: greedy, temperature, top-k, top-p, min-p and a mix, each seeded apart.
DeviceSamplingRow RowSettings(int i) {
  static const DeviceSamplingRow kRows[] = {
      {0.0f, 0, 1.0f, 0.0f}, {1.0f, 0, 1.0f, 0.0f}, {0.7f, 20, 1.0f, 0.0f},
      {1.0f, 0, 0.9f, 0.0f}, {1.2f, 0, 1.0f, 0.1f}, {0.8f, 40, 0.8f, 0.02f},
  };
  DeviceSamplingRow row = kRows[i % 6];
  row.seed = 1000 + i;
  row.step = 3 * i;
  return row;
}

// The parameter: whether decode steps run as CUDA graphs.
class CudaSamplerTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (const std::string reason = testing::NoGpuReason(); !reason.empty())
      GTEST_SKIP() << "GPU test skipped: " << reason;
  }

  // A runner over model_ with 256 KV blocks.
  absl::StatusOr<std::unique_ptr<CudaModelRunner>> MakeRunner() const {
    CudaRunnerOptions options;
    options.num_kv_blocks = 256;
    options.block_size = kBlockSize;
    options.use_cuda_graphs = GetParam();
    return CudaModelRunner::Create(model_.config(), model_.weights(), options);
  }

  const testing::TinyModel model_{testing::GpuTinyConfig(), DType::kBF16, 7};
};

TEST_P(CudaSamplerTest, ForwardAndSampleEqualsHostSampling) {
  absl::StatusOr<std::unique_ptr<CudaModelRunner>> runner = MakeRunner();
  ASSERT_TRUE(runner.ok()) << runner.status();
  const int vocab = model_.config().vocab_size;
  // 19 prompts, then 19 single-token decodes over them (a decode graph when enabled).
  for (int phase = 0; phase < 2; ++phase) {
    std::vector<SeqStep> steps;
    std::vector<DeviceSamplingRow> rows;
    std::vector<std::vector<LogitEdit>> edits(19);  // what rows' edits point into
    for (int s = 0; s < 19; ++s) {
      const std::vector<int32_t> tokens = RandomTokens(20 + s, vocab, s);
      const int cached = phase == 0 ? 0 : 19 + s;
      steps.push_back(
          {std::vector<int32_t>(tokens.begin() + cached, tokens.begin() + (phase == 0 ? 19 + s : 20 + s)),
           cached,
           {3 * s, 3 * s + 1, 3 * s + 2}});
      DeviceSamplingRow row = RowSettings(s + 19 * phase);
      if (s % 3 == 1) {  // logit bias and penalties as edits: one token pushed far up, one penalised
        edits[s] = {LogitEdit{(7 * s) % vocab, 30.0f}, LogitEdit{(11 * s + 1) % vocab, -1.0f, 1.3f, 0.4f}};
        row.edits = edits[s];
      }
      rows.push_back(row);
    }
    const BatchMetadata batch = MakeBatch(steps, kBlockSize);
    absl::StatusOr<std::vector<int32_t>> device = (*runner)->ForwardAndSample(batch, rows);
    ASSERT_TRUE(device.ok()) << device.status();
    absl::StatusOr<LogitsView> logits =
        (*runner)->Forward(batch);  // the same step again: same KV, same logits
    ASSERT_TRUE(logits.ok()) << logits.status();
    for (int i = 0; i < logits->num_rows; ++i) {
      EXPECT_EQ((*device)[i], SampleDeviceRowOnHost(absl::MakeConstSpan(logits->row(i), vocab), rows[i]))
          << "phase " << phase << " row " << i;
    }
  }
}

// Two steps submitted before either is collected, the second's decode rows reading their tokens from the
// first's samples on the device (token_sources), against the same steps run one at a time with the tokens
// passed from the host.
TEST_P(CudaSamplerTest, SubmittedStepsReadPendingTokensOnTheDevice) {
  absl::StatusOr<std::unique_ptr<CudaModelRunner>> one_at_a_time = MakeRunner(), ahead = MakeRunner();
  ASSERT_TRUE(one_at_a_time.ok() && ahead.ok());
  const int vocab = model_.config().vocab_size;
  constexpr int kSeqs = 19;
  std::vector<SeqStep> prompts;
  std::vector<DeviceSamplingRow> rows;
  for (int s = 0; s < kSeqs; ++s) {
    prompts.push_back({RandomTokens(19 + s, vocab, s), 0, {3 * s, 3 * s + 1, 3 * s + 2}});
    rows.push_back(RowSettings(s));
  }
  // Decode steps after the prompts: token `tokens[s]` at position 19 + s + step.
  auto decode = [&](const std::vector<int32_t>& tokens, int step) {
    std::vector<SeqStep> steps;
    for (int s = 0; s < kSeqs; ++s)
      steps.push_back({{tokens[s]}, 19 + s + step, {3 * s, 3 * s + 1, 3 * s + 2}});
    return MakeBatch(steps, kBlockSize);
  };
  std::vector<DeviceSamplingRow> next_rows = rows;
  for (DeviceSamplingRow& row : next_rows) ++row.step;

  absl::StatusOr<std::vector<int32_t>> first =
      (*one_at_a_time)->ForwardAndSample(MakeBatch(prompts, kBlockSize), rows);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::vector<int32_t>> second =
      (*one_at_a_time)->ForwardAndSample(decode(*first, 0), next_rows);
  ASSERT_TRUE(second.ok()) << second.status();

  ASSERT_TRUE((*ahead)->SubmitForwardAndSample(MakeBatch(prompts, kBlockSize), rows).ok());
  BatchMetadata pending = decode(std::vector<int32_t>(kSeqs, -1), 0);
  pending.token_sources.resize(kSeqs);
  for (int s = 0; s < kSeqs; ++s) pending.token_sources[s] = s;
  ASSERT_TRUE((*ahead)->SubmitForwardAndSample(pending, next_rows).ok());
  EXPECT_EQ((*ahead)->CollectSamples().value(), *first);
  EXPECT_EQ((*ahead)->CollectSamples().value(), *second);

  pending.token_sources[4] = kSeqs;  // the previous step sampled kSeqs rows
  EXPECT_EQ((*ahead)->SubmitForwardAndSample(pending, next_rows).code(), absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Graphs, CudaSamplerTest, ::testing::Bool());

}  // namespace
}  // namespace doze

// CudaModelRunner::ForwardAndSample against Forward + the host Sampler's functions on the same step: the
// device path must pick the tokens the engine's host path would, logit edits (penalties, bias) included; and
// steps submitted ahead (SubmitForwardAndSample) against the same steps one at a time.
// Skips without a GPU.
#include <cuda_runtime.h>

#include <cmath>
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

  // A step that ends in host logits between a submission and its collection brings the submitted step's
  // tokens to the host on its way (its input kernel), as a submitted step does.
  absl::StatusOr<std::unique_ptr<CudaModelRunner>> between = MakeRunner();
  ASSERT_TRUE(between.ok());
  ASSERT_TRUE((*between)->SubmitForwardAndSample(MakeBatch(prompts, kBlockSize), rows).ok());
  ASSERT_TRUE((*between)->Forward(decode(*first, 0)).ok());
  EXPECT_EQ((*between)->CollectSamples().value(), *first);
}

// Steps whose rows are all greedy choose their tokens in the LM head's pass (kernels::LmHeadScreenedArgmax at
// 1 to 4 rows, kernels::LmHeadArgmax beyond): each token is the argmax of the same step's logits (Forward),
// or, where the two sum in another order, a logit within rounding of it.
TEST_P(CudaSamplerTest, GreedyStepsChooseTokensInTheLmHeadPass) {
  absl::StatusOr<std::unique_ptr<CudaModelRunner>> runner = MakeRunner();
  ASSERT_TRUE(runner.ok()) << runner.status();
  const int vocab = model_.config().vocab_size;
  for (const int seqs : {1, 3, 19}) {
    const std::vector<DeviceSamplingRow> greedy(seqs);  // temperature 0, no edits
    int same = 0, rows = 0;
    for (int phase = 0; phase < 3; ++phase) {  // prompts, then two decode steps
      std::vector<SeqStep> steps;
      for (int s = 0; s < seqs; ++s) {
        const std::vector<int32_t> tokens = RandomTokens(21 + s, vocab, s + seqs);
        const int cached = phase == 0 ? 0 : 18 + s + phase;
        steps.push_back({std::vector<int32_t>(tokens.begin() + cached, tokens.begin() + 19 + s + phase),
                         cached,
                         {3 * s, 3 * s + 1, 3 * s + 2}});
      }
      const BatchMetadata batch = MakeBatch(steps, kBlockSize);
      const int64_t chosen_before = (*runner)->lm_head_chosen_steps();
      absl::StatusOr<std::vector<int32_t>> device = (*runner)->ForwardAndSample(batch, greedy);
      ASSERT_TRUE(device.ok()) << device.status();
      EXPECT_EQ((*runner)->lm_head_chosen_steps(), chosen_before + 1) << seqs << " rows, phase " << phase;
      absl::StatusOr<LogitsView> logits = (*runner)->Forward(batch);
      ASSERT_TRUE(logits.ok()) << logits.status();
      for (int i = 0; i < logits->num_rows; ++i) {
        const absl::Span<const float> row(logits->row(i), vocab);
        const int32_t want = SampleDeviceRowOnHost(row, greedy[i]);
        ++rows;
        if ((*device)[i] == want) {
          ++same;
          continue;
        }
        ASSERT_GE((*device)[i], 0);
        ASSERT_LT((*device)[i], vocab);
        EXPECT_NEAR(row[(*device)[i]], row[want], 1e-3f * (1.f + std::fabs(row[want])))
            << seqs << " rows, phase " << phase << " row " << i;
      }
    }
    EXPECT_GE(same, rows - 1) << seqs << " rows";
  }
}

// A greedy step of more rows than the sampler reserved (max_num_seqs) writes logits and samples them instead
// of choosing in the LM head's pass; the next fitting step chooses again.
TEST_P(CudaSamplerTest, GreedyStepBeyondTheReserveSamplesLogits) {
  CudaRunnerOptions options;
  options.num_kv_blocks = 256;
  options.block_size = kBlockSize;
  options.use_cuda_graphs = GetParam();
  options.max_num_seqs = 4;
  absl::StatusOr<std::unique_ptr<CudaModelRunner>> runner =
      CudaModelRunner::Create(model_.config(), model_.weights(), options);
  ASSERT_TRUE(runner.ok()) << runner.status();
  const int vocab = model_.config().vocab_size;
  for (const int seqs : {6, 3}) {
    std::vector<SeqStep> steps;
    for (int s = 0; s < seqs; ++s)
      steps.push_back({RandomTokens(9 + s, vocab, 40 + s), 0, {4 * s, 4 * s + 1}});
    const BatchMetadata batch = MakeBatch(steps, kBlockSize);
    const std::vector<DeviceSamplingRow> greedy(seqs);
    const int64_t chosen_before = (*runner)->lm_head_chosen_steps();
    absl::StatusOr<std::vector<int32_t>> device = (*runner)->ForwardAndSample(batch, greedy);
    ASSERT_TRUE(device.ok()) << device.status();
    EXPECT_EQ((*runner)->lm_head_chosen_steps(), chosen_before + (seqs <= 4 ? 1 : 0)) << seqs << " rows";
    absl::StatusOr<LogitsView> logits = (*runner)->Forward(batch);
    ASSERT_TRUE(logits.ok()) << logits.status();
    for (int i = 0; i < seqs; ++i) {
      const absl::Span<const float> row(logits->row(i), vocab);
      const int32_t want = SampleDeviceRowOnHost(row, greedy[i]);
      if ((*device)[i] != want)  // another order of the sums: only within rounding
        EXPECT_NEAR(row[(*device)[i]], row[want], 1e-3f * (1.f + std::fabs(row[want]))) << "row " << i;
    }
  }
}

// Greedy steps (tokens chosen in the LM head's pass) and sampled ones submitted ahead, each reading the
// previous step's tokens on the device, against a runner that always samples logits, one step at a time.
TEST_P(CudaSamplerTest, GreedyAndSampledStepsSubmittedAheadChainOnTheDevice) {
  absl::StatusOr<std::unique_ptr<CudaModelRunner>> ahead = MakeRunner();
  CudaRunnerOptions options;
  options.num_kv_blocks = 256;
  options.block_size = kBlockSize;
  options.use_cuda_graphs = GetParam();
  options.greedy_lm_head = false;
  absl::StatusOr<std::unique_ptr<CudaModelRunner>> reference =
      CudaModelRunner::Create(model_.config(), model_.weights(), options);
  ASSERT_TRUE(ahead.ok() && reference.ok());
  const int vocab = model_.config().vocab_size;
  constexpr int kSeqs = 9;
  std::vector<SeqStep> prompts;
  for (int s = 0; s < kSeqs; ++s) prompts.push_back({RandomTokens(19 + s, vocab, s), 0, {2 * s, 2 * s + 1}});
  auto decode = [&](const std::vector<int32_t>& tokens, int step) {
    std::vector<SeqStep> steps;
    for (int s = 0; s < kSeqs; ++s) steps.push_back({{tokens[s]}, 19 + s + step, {2 * s, 2 * s + 1}});
    return MakeBatch(steps, kBlockSize);
  };
  // Step 0 (prompts) greedy, step 1 sampled (row 0 at temperature 1), step 2 greedy, step 3 greedy.
  std::vector<std::vector<DeviceSamplingRow>> rows(4, std::vector<DeviceSamplingRow>(kSeqs));
  rows[1][0] = RowSettings(1);
  std::vector<std::vector<int32_t>> want;
  want.push_back((*reference)->ForwardAndSample(MakeBatch(prompts, kBlockSize), rows[0]).value());
  for (int step = 1; step < 4; ++step)
    want.push_back((*reference)->ForwardAndSample(decode(want.back(), step - 1), rows[step]).value());

  ASSERT_TRUE((*ahead)->SubmitForwardAndSample(MakeBatch(prompts, kBlockSize), rows[0]).ok());
  std::vector<std::vector<int32_t>> got;
  for (int step = 1; step < 4; ++step) {
    BatchMetadata pending = decode(std::vector<int32_t>(kSeqs, -1), step - 1);
    pending.token_sources.resize(kSeqs);
    for (int s = 0; s < kSeqs; ++s) pending.token_sources[s] = s;
    ASSERT_TRUE((*ahead)->SubmitForwardAndSample(pending, rows[step]).ok());
    got.push_back((*ahead)->CollectSamples().value());
  }
  got.push_back((*ahead)->CollectSamples().value());
  EXPECT_EQ((*ahead)->lm_head_chosen_steps(), 3);
  EXPECT_EQ((*reference)->lm_head_chosen_steps(), 0);
  EXPECT_EQ(got, want);
}

INSTANTIATE_TEST_SUITE_P(Graphs, CudaSamplerTest, ::testing::Bool());

}  // namespace
}  // namespace doze

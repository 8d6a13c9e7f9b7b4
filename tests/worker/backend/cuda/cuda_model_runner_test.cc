// CudaModelRunner against the CPU reference backend on a small random model: mixed prefill and decode
// batches, cached prefixes, long contexts (split attention), decode graphs of several buckets. Skips without
// a GPU.
#include "worker/backend/cuda/cuda_model_runner.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "tests/worker/backend/cuda/gpu_tiny_model.h"
#include "tests/worker/backend/tiny_model.h"
#include "worker/backend/cpu/cpu_model_runner.h"

namespace doze {
namespace {

using testing::MakeBatch;
using testing::RandomTokens;
using testing::SeqStep;
using Rows = std::vector<std::vector<float>>;

constexpr int kBlockSize = 16;
constexpr int kNumBlocks = 512;

Rows Step(ModelRunner& runner, const std::vector<SeqStep>& steps) {
  absl::StatusOr<LogitsView> logits = runner.Forward(MakeBatch(steps, kBlockSize));
  EXPECT_TRUE(logits.ok()) << logits.status();
  Rows rows;
  if (!logits.ok()) return rows;
  for (int i = 0; i < logits->num_rows; ++i)
    rows.emplace_back(logits->row(i), logits->row(i) + logits->vocab_size);
  return rows;
}

// Each row within `max_rel` in relative L2 distance and the rows' mean within `mean_rel`. The bf16 path
// rounds every activation (and, as transformers does in bf16, cos/sin); on the tiny model's large random
// weights that drifts 1% to 6% from the fp32 reference (measured on an H100, 2026-11-25). A wrong mask, slot
// or head is off by far more than that.
void ExpectRowsNear(const Rows& got, const Rows& want, double max_rel, double mean_rel,
                    const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double total = 0;
  for (size_t r = 0; r < got.size(); ++r) {
    double diff = 0, norm = 0;
    for (size_t i = 0; i < want[r].size(); ++i) {
      diff += (got[r][i] - want[r][i]) * (got[r][i] - want[r][i]);
      norm += want[r][i] * want[r][i];
    }
    const double rel = std::sqrt(diff / norm);
    EXPECT_LE(rel, max_rel) << what << " row " << r;  // NaN fails too
    total += rel;
  }
  EXPECT_LE(total / std::max<size_t>(got.size(), 1), mean_rel)
      << what << ": mean over " << got.size() << " rows";
}

// One sequence of the scenario: its tokens, how many are in the cache and its blocks.
struct Seq {
  std::vector<int32_t> tokens;
  int cached = 0;
  std::vector<int32_t> blocks;
};

class CudaModelRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string reason = testing::NoGpuReason();
    if (!reason.empty()) GTEST_SKIP() << "GPU test skipped: " << reason;
    cpu_ = std::make_unique<CpuModelRunner>(model_.config(), model_.weights(),
                                            CpuRunnerOptions{kNumBlocks, kBlockSize, 2});
    gpu_ = Make(true);
  }

  std::unique_ptr<CudaModelRunner> Make(bool graphs, int gemv_max_rows = 1,
                                        int decode_mma_max_rows = CudaRunnerOptions{}.decode_mma_max_rows,
                                        bool attention_rotary = true) {
    CudaRunnerOptions options;
    options.gemv_max_rows = gemv_max_rows;
    options.decode_mma_max_rows = decode_mma_max_rows;
    options.attention_rotary = attention_rotary;
    options.num_kv_blocks = kNumBlocks;
    options.block_size = kBlockSize;
    options.max_num_tokens = 256;  // small, so that a 700-token prompt grows the buffers
    options.max_num_seqs = 64;
    options.use_cuda_graphs = graphs;
    absl::StatusOr<std::unique_ptr<CudaModelRunner>> runner =
        CudaModelRunner::Create(model_.config(), model_.weights(), options);
    EXPECT_TRUE(runner.ok()) << runner.status();
    return runner.ok() ? std::move(*runner) : nullptr;
  }

  Seq NewSeq(int prompt_len, uint32_t seed) {
    Seq seq{RandomTokens(prompt_len + 8, model_.config().vocab_size, seed), 0, {}};
    const int blocks = (prompt_len + 8 + kBlockSize - 1) / kBlockSize;
    for (int b = 0; b < blocks; ++b) seq.blocks.push_back(next_block_++);
    return seq;
  }

  // Feeds `count` more tokens of each listed sequence as one batch on both backends and compares the logits.
  void StepBoth(std::vector<Seq*> seqs, std::vector<int> counts, const std::string& what,
                bool all_logits = false) {
    std::vector<SeqStep> steps;
    for (size_t i = 0; i < seqs.size(); ++i) {
      Seq& s = *seqs[i];
      steps.push_back(
          {std::vector<int32_t>(s.tokens.begin() + s.cached, s.tokens.begin() + s.cached + counts[i]),
           s.cached, s.blocks, all_logits});
      s.cached += counts[i];
    }
    ExpectRowsNear(Step(*gpu_, steps), Step(*cpu_, steps), 0.1, 0.04, what);
  }

  testing::TinyModel model_{testing::GpuTinyConfig(), DType::kBF16, 5};
  std::unique_ptr<CpuModelRunner> cpu_;
  std::unique_ptr<CudaModelRunner> gpu_;
  int next_block_ = 0;
};

TEST_F(CudaModelRunnerTest, MixedPrefillAndDecodeMatchCpu) {
  Seq a = NewSeq(37, 1), b = NewSeq(300, 2), c = NewSeq(5, 3);
  StepBoth({&a, &b, &c}, {16, 300, 5}, "prefill", /*all_logits=*/true);
  StepBoth({&a, &b, &c}, {21, 1, 1}, "rest of a with decode of b and c");
  for (int i = 0; i < 4; ++i) StepBoth({&a, &b, &c}, {1, 1, 1}, "decode " + std::to_string(i));
  EXPECT_GE(gpu_->num_graphs(), 1);
}

TEST_F(CudaModelRunnerTest, LongContextDecodeMatchesCpu) {
  Seq d = NewSeq(700, 4);
  StepBoth({&d}, {700}, "700-token prompt");
  for (int i = 0; i < 3; ++i) StepBoth({&d}, {1}, "decode " + std::to_string(i));
}

TEST_F(CudaModelRunnerTest, NineteenSequencesDecodeMatchesCpu) {
  std::vector<Seq> seqs;
  for (int i = 0; i < 19; ++i) seqs.push_back(NewSeq(3 + 5 * i, 10 + i));
  std::vector<Seq*> all;
  std::vector<int> prompt_lens, ones(19, 1);
  for (int i = 0; i < 19; ++i) {
    all.push_back(&seqs[i]);
    prompt_lens.push_back(3 + 5 * i);
  }
  StepBoth(all, prompt_lens, "prefill of 19");
  for (int i = 0; i < 3; ++i) StepBoth(all, ones, "decode of 19, step " + std::to_string(i));
}

TEST_F(CudaModelRunnerTest, GraphReplayMatchesEager) {
  std::unique_ptr<CudaModelRunner> eager = Make(false);
  ASSERT_NE(eager, nullptr);
  Seq s = NewSeq(40, 7);
  std::vector<SeqStep> steps{{std::vector<int32_t>(s.tokens.begin(), s.tokens.begin() + 40), 0, s.blocks}};
  ExpectRowsNear(Step(*gpu_, steps), Step(*eager, steps), 1e-2, 1e-2, "prefill");
  for (int i = 0; i < 5; ++i) {
    steps = {{{s.tokens[40 + i]}, 40 + i, s.blocks}};
    ExpectRowsNear(Step(*gpu_, steps), Step(*eager, steps), 1e-2, 1e-2, "decode " + std::to_string(i));
  }
  EXPECT_EQ(gpu_->num_graphs(), 1);
  EXPECT_EQ(eager->num_graphs(), 0);
}

// Decode batches of up to 8 rows through the fused decode GEMVs (rows padded to 4 and 8 in the graphs).
TEST_F(CudaModelRunnerTest, FusedDecodeOfSeveralRowsMatchesCpu) {
  gpu_ = Make(true, /*gemv_max_rows=*/8);
  ASSERT_NE(gpu_, nullptr);
  std::vector<Seq> seqs;
  for (int i = 0; i < 5; ++i) seqs.push_back(NewSeq(20 + 37 * i, 40 + i));
  std::vector<Seq*> all;
  std::vector<int> prompt_lens;
  for (int i = 0; i < 5; ++i) {
    all.push_back(&seqs[i]);
    prompt_lens.push_back(20 + 37 * i);
  }
  StepBoth(all, prompt_lens, "prefill of 5");
  for (int i = 0; i < 3; ++i) StepBoth(all, {1, 1, 1, 1, 1}, "decode of 5, step " + std::to_string(i));
  for (int i = 0; i < 2; ++i)
    StepBoth({all[0], all[2], all[4]}, {1, 1, 1}, "decode of 3, step " + std::to_string(i));
  EXPECT_EQ(gpu_->num_graphs(), 2);
}

// With the tensor-core decode kernels allowed up to 64 rows (rotary and SwiGLU in their epilogues), decode
// batches of 2 to 64 rows take them: 41 sequences pad to the 48-row graph, 64 fill the largest. Logits as the
// CPU's, and in decode as cuBLASLt's (the same bf16 roundings; only the order of the fp32 sums differs). The
// cuBLASLt runner's decode attention (one block per row and KV head at 41 and 64 rows) rotates Q and the new
// K itself: bit for bit what a RotaryAndCacheWrite before it gives.
TEST_F(CudaModelRunnerTest, TensorCoreDecodeMatchesCpuAndCublasLt) {
  std::unique_ptr<CudaModelRunner> tensor_cores = Make(true, /*gemv_max_rows=*/1, /*decode_mma_max_rows=*/64);
  std::unique_ptr<CudaModelRunner> cublas_lt = Make(true, /*gemv_max_rows=*/1, /*decode_mma_max_rows=*/0);
  std::unique_ptr<CudaModelRunner> separate_rotary =
      Make(true, /*gemv_max_rows=*/1, /*decode_mma_max_rows=*/0, /*attention_rotary=*/false);
  ASSERT_NE(tensor_cores, nullptr);
  ASSERT_NE(cublas_lt, nullptr);
  ASSERT_NE(separate_rotary, nullptr);
  ASSERT_TRUE(tensor_cores->UseDecodeMma(41) && tensor_cores->UseDecodeMma(64));
  ASSERT_FALSE(cublas_lt->UseDecodeMma(41) || cublas_lt->UseDecodeMma(64));
  std::vector<Seq> seqs;
  for (int i = 0; i < 64; ++i) seqs.push_back(NewSeq(2 + 3 * i, 100 + i));
  // Runs the next tokens of the first `num_seqs` sequences (their prompts, or one each) on all four runners.
  const auto step = [&](int num_seqs, bool prefill, const std::string& what) {
    std::vector<SeqStep> steps;
    for (int i = 0; i < num_seqs; ++i) {
      Seq& s = seqs[i];
      const int count = prefill ? 2 + 3 * i : 1;
      steps.push_back({std::vector<int32_t>(s.tokens.begin() + s.cached, s.tokens.begin() + s.cached + count),
                       s.cached, s.blocks});
      s.cached += count;
    }
    const Rows tensor_core = Step(*tensor_cores, steps);
    ExpectRowsNear(tensor_core, Step(*cpu_, steps), 0.1, 0.04, what + " vs CPU");
    const Rows cublas = Step(*cublas_lt, steps);  // every runner's cache needs the step
    if (!prefill) ExpectRowsNear(tensor_core, cublas, 2e-2, 1e-2, what + " vs cuBLASLt");
    EXPECT_EQ(cublas, Step(*separate_rotary, steps)) << what << ": rotary in the attention";
  };
  step(64, true, "prefill of 64");
  for (int i = 0; i < 2; ++i) step(64, false, "decode of 64, step " + std::to_string(i));
  step(41, false, "decode of 41");
  EXPECT_EQ(tensor_cores->num_graphs(), 2);
}

TEST_F(CudaModelRunnerTest, RejectsUnsupportedShapesAndBadBatches) {
  testing::TinyModel odd(testing::TinyConfig(), DType::kF32, 1);
  EXPECT_EQ(CudaModelRunner::Create(odd.config(), odd.weights(), CudaRunnerOptions{}).status().code(),
            absl::StatusCode::kInvalidArgument);
  BatchMetadata bad = MakeBatch({{{1, 2}, 0, {kNumBlocks + 5}}}, kBlockSize);
  EXPECT_EQ(gpu_->Forward(bad).status().code(), absl::StatusCode::kInvalidArgument);
  CudaRunnerOptions small_blocks;  // the attention reads keys 16 at a time from one block
  small_blocks.block_size = 8;
  small_blocks.num_kv_blocks = kNumBlocks;
  const absl::Status status =
      CudaModelRunner::Create(model_.config(), model_.weights(), small_blocks).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("block_size 8"), std::string::npos) << status;
}

TEST_F(CudaModelRunnerTest, Fp32CheckpointMatchesCpu) {
  testing::TinyModel wide(testing::GpuTinyConfig(), DType::kF32, 9);
  CpuModelRunner cpu(wide.config(), wide.weights(), CpuRunnerOptions{kNumBlocks, kBlockSize, 2});
  CudaRunnerOptions options;
  options.num_kv_blocks = kNumBlocks;
  absl::StatusOr<std::unique_ptr<CudaModelRunner>> gpu =
      CudaModelRunner::Create(wide.config(), wide.weights(), options);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  const std::vector<SeqStep> steps{{RandomTokens(33, wide.config().vocab_size, 3), 0, {0, 1, 2}, true}};
  ExpectRowsNear(Step(**gpu, steps), Step(cpu, steps), 0.1, 0.04, "fp32 weights");
}

// Weights holding a NaN (in the file) or a value past bf16's range (an fp32 checkpoint rounded at upload) are
// refused at upload, naming the tensor, rather than served as tokens without meaning.
TEST_F(CudaModelRunnerTest, WeightsHoldingNaNOrInfinityAreRefused) {
  testing::TinyModel spoiled(testing::GpuTinyConfig(), DType::kBF16, 11);
  const TensorView& down = spoiled.weights().layers[1].down_proj;
  testing::StoreAs(DType::kBF16, std::nanf(""), const_cast<void*>(down.data), down.shape[1] + 3);
  CudaRunnerOptions options;
  options.num_kv_blocks = kNumBlocks;
  absl::Status status = CudaModelRunner::Create(spoiled.config(), spoiled.weights(), options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("tensor model.layers.1.mlp.down_proj.weight holds 1 NaN or infinite value "
                                  "(the first at row 1, column 3)"),
            std::string::npos)
      << status;
  testing::TinyModel wide(testing::GpuTinyConfig(), DType::kF32, 12);
  const TensorView& norm = wide.weights().layers[0].input_layernorm;
  testing::StoreAs(DType::kF32, 3.4e38f, const_cast<void*>(norm.data), 2);  // finite in fp32, not in bf16
  status = CudaModelRunner::Create(wide.config(), wide.weights(), options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("1 weights are infinite once rounded to bf16"), std::string::npos)
      << status;
}

// Sleep frees the weights, the KV pool and the activations; Wake restores the weights byte for byte, so the
// same steps give bitwise the same logits, decode graphs included.
TEST_F(CudaModelRunnerTest, SleepAndWakeFreeMemoryAndKeepLogits) {
  Seq s = NewSeq(40, 11);
  const auto run = [&] {
    std::vector<SeqStep> steps{{std::vector<int32_t>(s.tokens.begin(), s.tokens.begin() + 40), 0, s.blocks}};
    Rows rows = Step(*gpu_, steps);
    for (int i = 0; i < 4; ++i) {  // the first decode step captures the graph, the others replay it
      steps = {{{s.tokens[40 + i]}, 40 + i, s.blocks}};
      const Rows row = Step(*gpu_, steps);
      rows.insert(rows.end(), row.begin(), row.end());
    }
    return rows;
  };
  const auto expect_bitwise_equal = [](const Rows& got, const Rows& want, const std::string& what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    for (size_t r = 0; r < got.size(); ++r) {
      ASSERT_EQ(got[r].size(), want[r].size()) << what << " row " << r;
      EXPECT_EQ(std::memcmp(got[r].data(), want[r].data(), got[r].size() * sizeof(float)), 0)
          << what << " row " << r;
    }
  };
  const Rows before = run();
  EXPECT_EQ(gpu_->num_graphs(), 1);
  const size_t weights = gpu_->weights_bytes(), kv_pool = gpu_->kv_pool_bytes();
  EXPECT_GT(kv_pool, 0u);

  size_t free_awake = 0, free_asleep = 0, total = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_awake, &total), cudaSuccess);
  ASSERT_TRUE(gpu_->Sleep().ok());
  ASSERT_TRUE(gpu_->Sleep().ok());  // already asleep: nothing to do
  ASSERT_EQ(cudaMemGetInfo(&free_asleep, &total), cudaSuccess);
  EXPECT_TRUE(gpu_->asleep());
  EXPECT_EQ(gpu_->num_graphs(), 0);
  EXPECT_EQ(gpu_->kv_pool_bytes(), 0u);
  // The driver may keep a 2 MiB page that the tiny model's small weights shared with a buffer still held.
  EXPECT_GE(free_asleep + (2 << 20), free_awake + weights + kv_pool)
      << "weights " << weights << ", KV pool " << kv_pool;
  const std::vector<SeqStep> probe{{{s.tokens[0]}, 0, s.blocks}};
  EXPECT_EQ(gpu_->Forward(MakeBatch(probe, kBlockSize)).status().code(),
            absl::StatusCode::kFailedPrecondition);

  ASSERT_TRUE(gpu_->Wake().ok());
  ASSERT_TRUE(gpu_->Wake().ok());  // already awake: nothing to do
  EXPECT_FALSE(gpu_->asleep());
  EXPECT_EQ(gpu_->num_kv_blocks(), kNumBlocks);
  EXPECT_EQ(gpu_->kv_pool_bytes(), kv_pool);
  EXPECT_EQ(gpu_->weights_bytes(), weights);
  EXPECT_EQ(gpu_->num_graphs(), 0);
  expect_bitwise_equal(run(), before, "after the first wake");
  EXPECT_EQ(gpu_->num_graphs(), 1);

  // A second cycle reuses the pinned host copy of the weights.
  ASSERT_TRUE(gpu_->Sleep().ok());
  ASSERT_TRUE(gpu_->Wake().ok());
  expect_bitwise_equal(run(), before, "after the second wake");
  EXPECT_EQ(gpu_->num_graphs(), 1);
}

}  // namespace
}  // namespace doze

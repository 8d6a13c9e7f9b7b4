#include "worker/backend/cpu/cpu_model_runner.h"

#include <vector>

#include "gtest/gtest.h"
#include "tests/worker/backend/all_close.h"
#include "tests/worker/backend/cpu_reference.h"
#include "tests/worker/backend/tiny_model.h"

namespace doze {
namespace {

using testing::MakeBatch;
using testing::SeqStep;
using testing::TinyConfig;
using testing::TinyModel;
using Rows = std::vector<std::vector<float>>;  // [num_logits][vocab]

constexpr int kBlockSize = 4;  // small, so that every sequence crosses several blocks

CpuRunnerOptions Options(int num_threads = 2, int block_size = kBlockSize) {
  return CpuRunnerOptions{/*num_kv_blocks=*/64, block_size, num_threads};
}

// Runs one step and copies its logits out.
Rows Step(CpuModelRunner& runner, const std::vector<SeqStep>& steps) {
  absl::StatusOr<LogitsView> logits = runner.Forward(MakeBatch(steps, runner.block_size()));
  EXPECT_TRUE(logits.ok()) << logits.status();
  Rows rows;
  if (!logits.ok()) return rows;
  for (int i = 0; i < logits->num_rows; ++i)
    rows.emplace_back(logits->row(i), logits->row(i) + logits->vocab_size);
  return rows;
}

// Feeds `tokens` one per step: the logits after each.
Rows OneAtATime(CpuModelRunner& runner, const std::vector<int32_t>& tokens,
                const std::vector<int32_t>& blocks) {
  Rows rows;
  for (size_t i = 0; i < tokens.size(); ++i)
    rows.push_back(Step(runner, {{{tokens[i]}, static_cast<int>(i), blocks}})[0]);
  return rows;
}

// Prefills `tokens` in chunks of `chunk` tokens: the logits of every position.
Rows Chunked(CpuModelRunner& runner, const std::vector<int32_t>& tokens, int chunk,
             const std::vector<int32_t>& blocks) {
  Rows rows;
  for (size_t begin = 0; begin < tokens.size(); begin += chunk) {
    const size_t end = std::min(tokens.size(), begin + chunk);
    const std::vector<int32_t> part(tokens.begin() + begin, tokens.begin() + end);
    for (auto& row : Step(runner, {{part, static_cast<int>(begin), blocks, true}}))
      rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<int32_t> Blocks(int first, int count) {
  std::vector<int32_t> blocks(count);
  for (int i = 0; i < count; ++i) blocks[i] = first + i;
  return blocks;
}

void ExpectRowsClose(const Rows& actual, const Rows& expected, double atol, double rtol,
                     const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i) {
    testing::ExpectAllClose(actual[i], expected[i], atol, rtol, what + " row " + std::to_string(i));
  }
}

class CpuModelRunnerTest : public ::testing::Test {
 protected:
  TinyModel model_{TinyConfig(), DType::kBF16, 1};
  std::vector<int32_t> prompt_ = testing::RandomTokens(37, TinyConfig().vocab_size, 2);
};

TEST_F(CpuModelRunnerTest, MixedPrefillAndDecodeEqualsOneTokenAtATime) {
  const std::vector<int32_t> b_tokens = testing::RandomTokens(12, TinyConfig().vocab_size, 3);
  const std::vector<int32_t> c_tokens = testing::RandomTokens(7, TinyConfig().vocab_size, 4);
  const std::vector<int32_t> a_blocks = Blocks(0, 10), b_blocks = Blocks(20, 3), c_blocks = Blocks(30, 2);
  CpuModelRunner batched(model_.config(), model_.weights(), Options());
  std::vector<int32_t> a_prompt(prompt_.begin(), prompt_.begin() + 37);
  Step(batched, {{{b_tokens.begin(), b_tokens.begin() + 10}, 0, b_blocks},
                 {{c_tokens.begin(), c_tokens.begin() + 5}, 0, c_blocks}});
  // One step: A's whole prefill (every row's logits) beside decode steps of B and C.
  const Rows mixed = Step(
      batched, {{a_prompt, 0, a_blocks, true}, {{b_tokens[10]}, 10, b_blocks}, {{c_tokens[5]}, 5, c_blocks}});
  const Rows next = Step(batched, {{{b_tokens[11]}, 11, b_blocks}, {{c_tokens[6]}, 6, c_blocks}});
  ASSERT_EQ(mixed.size(), 39u);

  CpuModelRunner single(model_.config(), model_.weights(), Options());
  const Rows a_alone = OneAtATime(single, a_prompt, a_blocks);
  const Rows b_alone = OneAtATime(single, b_tokens, b_blocks);
  const Rows c_alone = OneAtATime(single, c_tokens, c_blocks);
  ExpectRowsClose(Rows(mixed.begin(), mixed.begin() + 37), a_alone, 1e-6, 1e-4, "prefill A");
  ExpectRowsClose({mixed[37], next[0]}, {b_alone[10], b_alone[11]}, 1e-6, 1e-4, "decode B");
  ExpectRowsClose({mixed[38], next[1]}, {c_alone[5], c_alone[6]}, 1e-6, 1e-4, "decode C");
}

TEST_F(CpuModelRunnerTest, ChunkedPrefillEqualsOneChunk) {
  CpuModelRunner runner(model_.config(), model_.weights(), Options());
  const Rows whole = Chunked(runner, prompt_, 37, Blocks(0, 10));
  ExpectRowsClose(Chunked(runner, prompt_, 5, Blocks(10, 10)), whole, 1e-6, 1e-4, "chunks of 5");
  ExpectRowsClose(Chunked(runner, prompt_, 16, Blocks(20, 10)), whole, 1e-6, 1e-4, "chunks of 16");
}

TEST_F(CpuModelRunnerTest, ScatteredBlockTablesGiveIdenticalLogits) {
  for (int block_size : {kBlockSize, 16}) {
    const int num_blocks = (37 + block_size - 1) / block_size;
    CpuModelRunner runner(model_.config(), model_.weights(), Options(2, block_size));
    const Rows contiguous = Chunked(runner, prompt_, 11, Blocks(0, num_blocks));
    const std::vector<int32_t> scattered = {61, 13, 40, 27, 55, 19, 33, 47, 50, 12};
    EXPECT_EQ(Chunked(runner, prompt_, 11, {scattered.begin(), scattered.begin() + num_blocks}), contiguous)
        << "block size " << block_size;
  }
}

TEST_F(CpuModelRunnerTest, ThreadCountDoesNotChangeLogits) {
  CpuModelRunner one(model_.config(), model_.weights(), Options(1));
  CpuModelRunner three(model_.config(), model_.weights(), Options(3));
  EXPECT_EQ(Chunked(one, prompt_, 9, Blocks(0, 10)), Chunked(three, prompt_, 9, Blocks(0, 10)));
}

TEST(CpuModelRunnerReferenceTest, MatchesFullRecomputeForEveryDtype) {
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (bool tied : {true, false}) {
      ModelConfig config = TinyConfig();
      config.tie_word_embeddings = tied;
      const TinyModel model(config, dtype, 7);
      const std::vector<int32_t> tokens = testing::RandomTokens(29, config.vocab_size, 8);
      const std::vector<std::vector<double>> expected = testing::RefForward(config, model.weights(), tokens);
      CpuModelRunner runner(config, model.weights(), Options());
      // A prefill of 21 tokens, then decode steps for the rest.
      Rows actual = Chunked(runner, {tokens.begin(), tokens.begin() + 21}, 21, Blocks(0, 8));
      for (size_t i = 21; i < tokens.size(); ++i)
        actual.push_back(Step(runner, {{{tokens[i]}, static_cast<int>(i), Blocks(0, 8)}})[0]);
      ASSERT_EQ(actual.size(), expected.size());
      for (size_t t = 0; t < expected.size(); ++t) {
        testing::ExpectAllClose(actual[t], expected[t], 1e-4, 1e-4,
                                "dtype " + std::string(DTypeName(dtype)) + " tied " + std::to_string(tied) +
                                    " position " + std::to_string(t));
      }
    }
  }
}

TEST_F(CpuModelRunnerTest, RejectsABadBatchAndStaysUsable) {
  CpuModelRunner runner(model_.config(), model_.weights(), Options());
  BatchMetadata batch = MakeBatch({{{1, 2, 3}, 0, Blocks(0, 1)}}, kBlockSize);
  batch.token_ids[1] = TinyConfig().vocab_size;
  EXPECT_EQ(runner.Forward(batch).status().code(), absl::StatusCode::kInvalidArgument);
  batch.slot_mapping[1] = 64 * kBlockSize;
  batch.token_ids[1] = 2;
  EXPECT_EQ(runner.Forward(batch).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Step(runner, {{{1, 2, 3}, 0, Blocks(63, 1)}}).size(), 1u);
}

}  // namespace
}  // namespace doze

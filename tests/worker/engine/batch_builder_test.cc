#include "worker/engine/batch_builder.h"

#include <memory>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace doze {
namespace {

using ::testing::ElementsAre;

constexpr int kBlockSize = 4;

std::unique_ptr<Sequence> SeqWith(uint64_t id, int num_tokens, int num_computed,
                                  std::vector<int32_t> blocks) {
  std::vector<int32_t> tokens(num_tokens);
  for (int i = 0; i < num_tokens; ++i) tokens[i] = static_cast<int32_t>(100 * id + i);
  auto seq = std::make_unique<Sequence>(id, std::move(tokens), SamplingParams{}, 0);
  seq->set_num_computed_tokens(num_computed);
  seq->mutable_block_table() = std::move(blocks);
  return seq;
}

void ExpectSameBatch(const Batch& a, const Batch& b) {
  EXPECT_EQ(a.metadata.token_ids, b.metadata.token_ids);
  EXPECT_EQ(a.metadata.positions, b.metadata.positions);
  EXPECT_EQ(a.metadata.slot_mapping, b.metadata.slot_mapping);
  EXPECT_EQ(a.metadata.query_start_loc, b.metadata.query_start_loc);
  EXPECT_EQ(a.metadata.seq_lens, b.metadata.seq_lens);
  EXPECT_EQ(a.metadata.block_tables, b.metadata.block_tables);
  EXPECT_EQ(a.metadata.max_blocks_per_seq, b.metadata.max_blocks_per_seq);
  EXPECT_EQ(a.metadata.logits_indices, b.metadata.logits_indices);
  EXPECT_EQ(a.sampled_seqs, b.sampled_seqs);
}

// A decode of a 6-token sequence (blocks 7, 2) and the first 3-token chunk of a 5-token prompt (block 5).
TEST(BatchBuilderTest, LaysChunksEndToEnd) {
  auto decode = SeqWith(1, 6, 5, {7, 2});
  auto prefill = SeqWith(2, 5, 0, {5});
  const std::vector<ScheduledChunk> chunks = {{decode.get(), 1, true}, {prefill.get(), 3, false}};
  Batch batch;
  BuildBatch(chunks, kBlockSize, &batch);
  const BatchMetadata& m = batch.metadata;
  EXPECT_THAT(m.token_ids, ElementsAre(105, 200, 201, 202));
  EXPECT_THAT(m.positions, ElementsAre(5, 0, 1, 2));
  EXPECT_THAT(m.slot_mapping, ElementsAre(2 * kBlockSize + 1, 20, 21, 22));
  EXPECT_THAT(m.query_start_loc, ElementsAre(0, 1, 4));
  EXPECT_THAT(m.seq_lens, ElementsAre(6, 3));
  EXPECT_EQ(m.max_blocks_per_seq, 2);
  EXPECT_THAT(m.block_tables, ElementsAre(7, 2, 5, -1));
  EXPECT_THAT(m.logits_indices, ElementsAre(0));
  EXPECT_THAT(batch.sampled_seqs, ElementsAre(decode.get()));
}

// The engine keeps one Batch across steps: a rebuild must leave nothing of the step before, larger or
// smaller.
TEST(BatchBuilderTest, RebuildEqualsAFreshBuild) {
  auto a = SeqWith(1, 12, 11, {3, 4, 9});
  auto b = SeqWith(2, 9, 1, {1, 6, 8});
  auto c = SeqWith(3, 2, 1, {0});
  const std::vector<std::vector<ScheduledChunk>> steps = {
      {{a.get(), 1, true}, {b.get(), 8, true}},
      {{c.get(), 1, true}},
      {{a.get(), 1, true}, {c.get(), 1, true}, {b.get(), 2, false}},
      {{b.get(), 3, false}},
  };
  Batch reused;
  for (const std::vector<ScheduledChunk>& chunks : steps) {
    BuildBatch(chunks, kBlockSize, &reused);
    Batch fresh;
    BuildBatch(chunks, kBlockSize, &fresh);
    ExpectSameBatch(reused, fresh);
  }
}

}  // namespace
}  // namespace doze

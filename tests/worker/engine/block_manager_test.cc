#include "worker/engine/block_manager.h"

#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "worker/engine/prefix_hash.h"

namespace doze {
namespace {

constexpr int kBlockSize = 4;

std::vector<int32_t> Range(int32_t first, int count) {
  std::vector<int32_t> v(count);
  std::iota(v.begin(), v.end(), first);
  return v;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

enum class Op {
  kAllocate,      // FindCachedPrefix + Allocate(hit, tokens)
  kCantAllocate,  // FindCachedPrefix + CanAllocate(hit, tokens) is false
  kLookup,        // FindCachedPrefix only
  kCompute,       // `tokens` more computed, then CacheFullBlocks
  kFree,
};

// One row: an operation on a named sequence, then the expected pool state.
struct Row {
  Op op;
  std::string seq;
  int tokens;
  int hit_tokens;  // kAllocate, kCantAllocate, kLookup: expected prefix-cache hit
  int used;
  int free;
  int cached;
};

class BlockManagerTableTest : public ::testing::Test {
 protected:
  void Run(BlockManager& bm, const std::vector<Row>& table) {
    for (size_t i = 0; i < table.size(); ++i) {
      const Row& row = table[i];
      SCOPED_TRACE("row " + std::to_string(i) + " (" + row.seq + ")");
      Sequence& seq = seqs_.at(row.seq);
      if (row.op == Op::kLookup) {
        EXPECT_EQ(static_cast<int>(bm.FindCachedPrefix(seq).block_ids.size()) * kBlockSize, row.hit_tokens);
      } else if (row.op == Op::kAllocate || row.op == Op::kCantAllocate) {
        PrefixHit hit = bm.FindCachedPrefix(seq);
        EXPECT_EQ(static_cast<int>(hit.block_ids.size()) * kBlockSize, row.hit_tokens);
        ASSERT_EQ(bm.CanAllocate(hit, row.tokens), row.op == Op::kAllocate);
        if (row.op == Op::kAllocate) {
          bm.Allocate(hit, row.tokens, seq);
          EXPECT_EQ(seq.num_cached_tokens(), row.hit_tokens);
          EXPECT_EQ(seq.num_computed_tokens(), row.hit_tokens);
        }
      } else if (row.op == Op::kCompute) {
        seq.set_num_computed_tokens(seq.num_computed_tokens() + row.tokens);
        bm.CacheFullBlocks(seq);
      } else {
        bm.Free(seq);
        EXPECT_TRUE(seq.block_table().empty());
      }
      EXPECT_EQ(bm.num_used_blocks(), row.used);
      EXPECT_EQ(bm.num_free_blocks(), row.free);
      EXPECT_EQ(bm.num_cached_blocks(), row.cached);
    }
  }

  void AddSeq(const std::string& name, std::vector<int32_t> tokens) {
    seqs_.emplace(name, Sequence(seqs_.size() + 1, std::move(tokens), SamplingParams{}, 0));
  }

  std::map<std::string, Sequence> seqs_;
};

TEST_F(BlockManagerTableTest, SharesCachedPrefixesAndEvictsOnlyWhenFreeListIsEmpty) {
  BlockManager bm(8, kBlockSize);
  AddSeq("A", Range(1, 10));
  AddSeq("B", Concat(Range(1, 8), {20, 21}));
  AddSeq("C", Range(1, 8));  // two full blocks, but its last token must be computed: one block can hit
  AddSeq("D", Range(30, 24));
  AddSeq("E", Range(60, 32));
  Run(bm, {
              // op             seq  tokens hit used free cached
              {Op::kAllocate, "A", 10, 0, 3, 5, 0},
              {Op::kCompute, "A", 10, 0, 3, 5, 2},
              {Op::kAllocate, "B", 2, 8, 4, 4, 2},
              {Op::kAllocate, "C", 4, 4, 5, 3, 2},
              {Op::kCompute, "B", 2, 0, 5, 3, 2},
              {Op::kFree, "A", 0, 0, 4, 4, 2},  // A's shared blocks stay with B and C
              {Op::kFree, "B", 0, 0, 2, 6, 2},
              {Op::kFree, "C", 0, 0, 0, 8, 2},          // both cached blocks are unreferenced but kept
              {Op::kAllocate, "D", 24, 0, 6, 2, 2},     // six uncached free blocks: no eviction
              {Op::kCantAllocate, "A", 2, 8, 6, 2, 2},  // the 2 free are A's own hits; a third is needed
              {Op::kFree, "D", 0, 0, 0, 8, 2},
              {Op::kAllocate, "E", 32, 0, 8, 0, 0},  // takes everything: the cached blocks are evicted
          });
}

TEST_F(BlockManagerTableTest, EvictsLeastRecentlyReleasedTailFirst) {
  BlockManager bm(4, kBlockSize);
  AddSeq("X", Range(1, 8));
  AddSeq("Y", Range(11, 8));
  AddSeq("Z", Range(21, 3));
  AddSeq("X+", Range(1, 9));
  AddSeq("Y+", Range(11, 9));
  Run(bm, {
              {Op::kAllocate, "X", 8, 0, 2, 2, 0},
              {Op::kCompute, "X", 8, 0, 2, 2, 2},
              {Op::kFree, "X", 0, 0, 0, 4, 2},
              {Op::kAllocate, "Y", 8, 0, 2, 2, 2},  // the two never-cached blocks go first
              {Op::kCompute, "Y", 8, 0, 2, 2, 4},
              {Op::kFree, "Y", 0, 0, 0, 4, 4},
              {Op::kAllocate, "Z", 3, 0, 1, 3, 3},  // evicts X's tail block, released first
              {Op::kLookup, "X+", 0, 4, 1, 3, 3},   // X's head block still hits
              {Op::kLookup, "Y+", 0, 8, 1, 3, 3},
          });
}

// Every block gets the same key: lookups must still only return blocks whose tokens match.
uint64_t ConstantHash(uint64_t, absl::Span<const int32_t>) { return 42; }

// Keys that ignore the parent: a block's KV depends on its prefix, so the parent check must reject a hit.
uint64_t ParentlessHash(uint64_t, absl::Span<const int32_t> tokens) { return HashBlockTokens(0, tokens); }

TEST_F(BlockManagerTableTest, CollidingKeysNeverReturnOtherTokens) {
  BlockManager bm(8, kBlockSize, &ConstantHash);
  AddSeq("A", Range(1, 9));
  AddSeq("B", Concat(Range(5, 4), {1}));  // A's second block's tokens, at the start
  AddSeq("A again", Range(1, 9));
  Run(bm, {
              {Op::kAllocate, "A", 9, 0, 3, 5, 0},
              {Op::kCompute, "A", 9, 0, 3, 5, 1},  // the second block's key is taken: it stays uncached
              {Op::kAllocate, "B", 5, 0, 5, 3, 1},
              {Op::kAllocate, "A again", 5, 4, 7, 1, 1},
          });
}

TEST_F(BlockManagerTableTest, HitNeedsTheSamePrefixNotJustTheSameBlock) {
  BlockManager bm(8, kBlockSize, &ParentlessHash);
  AddSeq("XY", Range(1, 9));                       // blocks [1..4] [5..8]
  AddSeq("YY", Concat(Range(5, 4), Range(5, 5)));  // [5..8] at position 0: different KV than XY's block 1
  AddSeq("XY again", Range(1, 9));
  Run(bm, {
              {Op::kAllocate, "XY", 9, 0, 3, 5, 0},
              {Op::kCompute, "XY", 9, 0, 3, 5, 2},
              {Op::kAllocate, "YY", 9, 0, 6, 2, 2},
              {Op::kAllocate, "XY again", 1, 8, 7, 1, 2},
          });
}

TEST(PrefixHashTest, MatchesXxHash64ReferenceValues) {
  EXPECT_EQ(XxHash64("", 0, 0), 0xEF46DB3751D8E999ULL);
  EXPECT_EQ(XxHash64("abc", 3, 0), 0x44BC2CF5AD770999ULL);
}

TEST(PrefixHashTest, ChainsOnTheParent) {
  std::vector<int32_t> block = Range(1, 16);
  EXPECT_EQ(HashBlockTokens(7, block), HashBlockTokens(7, block));
  EXPECT_NE(HashBlockTokens(7, block), HashBlockTokens(8, block));
  block[15] = 0;
  EXPECT_NE(HashBlockTokens(7, block), HashBlockTokens(7, Range(1, 16)));
}

}  // namespace
}  // namespace doze

#include "worker/backend/cpu/paged_attention.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/worker/backend/all_close.h"
#include "tests/worker/backend/cpu_reference.h"
#include "tests/worker/backend/tiny_model.h"

namespace doze {
namespace {

using testing::RandomFloats;

// Sequences of several lengths whose blocks are a shuffled part of the pool, each contributing its last few
// positions as query tokens.
struct AttentionCase {
  AttentionShape shape;
  int num_blocks = 0;
  std::vector<int> seq_lens;
  std::vector<int> num_queries;
};

void CheckAttention(const AttentionCase& c, ThreadPool* pool) {
  const AttentionShape& shape = c.shape;
  const int d = shape.head_dim, kv_row = shape.num_kv_heads * d, q_row = shape.num_heads * d;
  const std::vector<float> k_cache = RandomFloats(c.num_blocks * shape.block_size * kv_row, 1);
  std::vector<float> v_cache = RandomFloats(k_cache.size(), 2);
  std::vector<int32_t> pool_blocks(c.num_blocks);
  std::iota(pool_blocks.begin(), pool_blocks.end(), 0);
  std::shuffle(pool_blocks.begin(), pool_blocks.end(), std::mt19937(3));
  const int max_blocks = c.num_blocks / static_cast<int>(c.seq_lens.size());
  std::vector<int32_t> block_tables(pool_blocks.begin(),
                                    pool_blocks.begin() + max_blocks * c.seq_lens.size());
  std::vector<int32_t> positions, token_seq;
  for (size_t s = 0; s < c.seq_lens.size(); ++s) {
    for (int i = c.seq_lens[s] - c.num_queries[s]; i < c.seq_lens[s]; ++i) {
      positions.push_back(i);
      token_seq.push_back(s);
    }
  }
  const int64_t n = positions.size();
  const std::vector<float> q = RandomFloats(n * q_row, 4);  // [n, num_heads * head_dim]
  for (float& x : v_cache) x *= 3.0f;                       // larger scores: a peaked softmax
  std::vector<float> out(n * q_row, NAN);                   // [n, num_heads * head_dim]
  PagedAttention(shape, q.data(), k_cache.data(), v_cache.data(), positions.data(), token_seq.data(),
                 block_tables.data(), max_blocks, n, out.data(), pool);

  std::vector<double> expected;
  for (int64_t t = 0; t < n; ++t) {
    for (int h = 0; h < shape.num_heads; ++h) {
      const int g = h / (shape.num_heads / shape.num_kv_heads);
      std::vector<double> keys, values;  // [positions[t] + 1, head_dim]
      for (int j = 0; j <= positions[t]; ++j) {
        const int block = block_tables[token_seq[t] * max_blocks + j / shape.block_size];
        const size_t base =
            (static_cast<size_t>(block) * shape.block_size + j % shape.block_size) * kv_row + g * d;
        keys.insert(keys.end(), &k_cache[base], &k_cache[base] + d);
        values.insert(values.end(), &v_cache[base], &v_cache[base] + d);
      }
      std::vector<double> q_head(&q[t * q_row + h * d], &q[t * q_row + h * d] + d);
      std::vector<double> head =
          testing::RefAttendHead(q_head.data(), keys.data(), values.data(), positions[t] + 1, d);
      expected.insert(expected.end(), head.begin(), head.end());
    }
  }
  testing::ExpectAllClose(out, expected, 2e-6, 1e-5, "head_dim " + std::to_string(d));
}

TEST(PagedAttentionTest, MatchesReferenceWithScatteredBlocks) {
  for (int num_threads : {1, 2}) {
    ThreadPool pool(num_threads);
    // Three query heads per KV head, head_dim off the vector width, a block size that splits sequences
    // unevenly.
    CheckAttention({{6, 2, 18, 4}, 24, {1, 9, 23}, {1, 9, 5}}, &pool);
    CheckAttention({{14, 2, 64, 16}, 12, {37, 17, 1, 40}, {37, 1, 1, 3}}, &pool);
    CheckAttention({{1, 1, 3, 1}, 40, {40}, {40}}, &pool);
  }
}

TEST(WriteKvCacheTest, WritesOnlyTheGivenSlots) {
  const AttentionShape shape{4, 2, 5, 3};
  const int num_blocks = 4, kv_row = shape.num_kv_heads * shape.head_dim;
  std::vector<float> k_cache(num_blocks * shape.block_size * kv_row,
                             -1.0f);  // [blocks, block_size, kv_heads, d]
  std::vector<float> v_cache(k_cache.size(), -2.0f);
  const std::vector<int32_t> slots = {7, 0, 11};
  const std::vector<float> k = RandomFloats(slots.size() * kv_row, 1),
                           v = RandomFloats(slots.size() * kv_row, 2);
  WriteKvCache(shape, k.data(), v.data(), slots.data(), slots.size(), k_cache.data(), v_cache.data());
  for (int slot = 0; slot < num_blocks * shape.block_size; ++slot) {
    const auto it = std::find(slots.begin(), slots.end(), slot);
    for (int i = 0; i < kv_row; ++i) {
      const float k_want = it == slots.end() ? -1.0f : k[(it - slots.begin()) * kv_row + i];
      const float v_want = it == slots.end() ? -2.0f : v[(it - slots.begin()) * kv_row + i];
      ASSERT_EQ(k_cache[slot * kv_row + i], k_want) << "slot " << slot;
      ASSERT_EQ(v_cache[slot * kv_row + i], v_want) << "slot " << slot;
    }
  }
}

}  // namespace
}  // namespace doze

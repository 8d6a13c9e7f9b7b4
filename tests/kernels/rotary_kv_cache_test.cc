// RotaryAndCacheWrite: rotated Q/K in place, K and V copied to their slots, padding rows write nothing.
// RotaryTable: the cos and sin of every pair, against the host's double-precision values.
#include "kernels/rotary_kv_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tests/kernels/kernel_test_util.h"

namespace doze::kernels {
namespace {

using testing::AllClose;
using testing::DeviceArray;
using testing::ExpectCacheRows;
using testing::RandomBf16;
using testing::ToBf16;
using testing::ToFloat;

class RotaryTest : public ::testing::TestWithParam<int> {};

TEST_P(RotaryTest, RotatesAndWritesCache) {
  DOZE_SKIP_WITHOUT_GPU();
  RotaryShape shape{GetParam(), 14, 2, 64, 16};
  const int num_blocks = 67, row = (14 + 2 * 2) * 64, kv_size = 2 * 64;
  std::mt19937 rng(shape.num_tokens);
  std::vector<float> qkv = RandomBf16(static_cast<size_t>(shape.num_tokens) * row, -2.f, 2.f, rng);
  std::vector<int32_t> positions(shape.num_tokens), slots(num_blocks * shape.block_size);
  for (int32_t& p : positions) p = static_cast<int32_t>(rng() % 32768);
  std::iota(slots.begin(), slots.end(), 0);
  std::shuffle(slots.begin(), slots.end(), rng);
  slots.resize(shape.num_tokens);
  if (shape.num_tokens > 2) slots[2] = -1;
  const std::vector<float> inv_freq = reference::RopeInvFreq(64, 1000000.0);

  DeviceArray<__nv_bfloat16> d_qkv(ToBf16(qkv)), d_k(static_cast<size_t>(num_blocks) * 16 * kv_size),
      d_v(d_k.size());
  DeviceArray<int32_t> d_pos(positions), d_slots(slots);
  DeviceArray<float> d_inv_freq(inv_freq);
  d_k.Poison();
  d_v.Poison();
  RotaryAndCacheWrite(d_qkv.get(), d_pos.get(), d_slots.get(), d_inv_freq.get(), d_k.get(), d_v.get(), shape,
                      nullptr);

  std::vector<float> want = qkv;
  reference::Rotary(want.data(), positions.data(), inv_freq.data(), shape.num_tokens, 14, 2, 64);
  EXPECT_TRUE(AllClose(ToFloat(d_qkv.Download()), want, 1e-2f, 1e-2f));
  ExpectCacheRows(ToFloat(d_k.Download()), ToFloat(d_v.Download()), want, qkv, slots, shape.num_tokens, row,
                  14 * 64, kv_size, 1e-2f, 0.f);
}

// cos and sin of positions up to 32,767 (angles far past 2 pi) and head_dim 64 and 128, rounded to bf16:
// within one bf16 step (2^-8 near 1) of the host's double-precision values; an unwritten entry would show as
// NaN.
TEST_P(RotaryTest, TableMatchesHostCosSin) {
  DOZE_SKIP_WITHOUT_GPU();
  std::mt19937 rng(GetParam() + 5);
  std::vector<int32_t> positions(GetParam());
  for (int32_t& p : positions) p = static_cast<int32_t>(rng() % 32768);
  for (int head_dim : {64, 128}) {
    const int half = head_dim / 2;
    const std::vector<float> inv_freq = reference::RopeInvFreq(head_dim, 1000000.0);
    DeviceArray<int32_t> d_pos(positions);
    DeviceArray<float> d_inv_freq(inv_freq), d_table(positions.size() * head_dim);
    d_table.Poison();
    RotaryTable(d_pos.get(), d_inv_freq.get(), reinterpret_cast<float2*>(d_table.get()), GetParam(), head_dim,
                nullptr);
    std::vector<float> want(positions.size() * head_dim);
    for (size_t t = 0; t < positions.size(); ++t) {
      for (int i = 0; i < half; ++i) {
        const double angle = static_cast<double>(static_cast<float>(positions[t]) * inv_freq[i]);
        want[(t * half + i) * 2] = static_cast<float>(std::cos(angle));
        want[(t * half + i) * 2 + 1] = static_cast<float>(std::sin(angle));
      }
    }
    EXPECT_TRUE(AllClose(d_table.Download(), want, 1.f / 256, 0.f)) << "head_dim " << head_dim;
  }
}

INSTANTIATE_TEST_SUITE_P(Tokens, RotaryTest, ::testing::Values(1, 3, 17, 64, 511));

}  // namespace
}  // namespace doze::kernels

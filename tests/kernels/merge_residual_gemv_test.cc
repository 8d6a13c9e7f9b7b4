// MergeResidualGemv (o_proj merging the split attention's partials itself) against PagedAttention followed by
// ResidualGemv, bit for bit, and against the CPU reference attention times o_proj.
#include "kernels/merge_residual_gemv.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "kernels/decode_gemv.h"
#include "kernels/paged_attention.h"
#include "tests/kernels/kernel_test_util.h"

namespace doze::kernels {
namespace {

using testing::AllClose;
using testing::DeviceArray;
using testing::RandomBf16;
using testing::ToBf16;
using testing::ToFloat;

struct Shape {
  int num_q_heads, num_kv_heads, head_dim, n;
};

std::vector<uint16_t> Bits(const std::vector<__nv_bfloat16>& v) {
  std::vector<uint16_t> bits(v.size());
  std::memcpy(bits.data(), v.data(), v.size() * sizeof(uint16_t));
  return bits;
}

// One decode row of `context` keys in a shuffled paged cache, in a graph's bucket of `max_context` keys.
void CheckMergedOProj(int context, int max_context, Shape h, uint32_t seed) {
  const int block_size = 16, max_blocks = (max_context + block_size - 1) / block_size,
            num_blocks = max_blocks + 3;
  std::mt19937 rng(seed);
  std::vector<int32_t> blocks(num_blocks), tables(max_blocks);
  std::iota(blocks.begin(), blocks.end(), 0);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  std::copy_n(blocks.begin(), max_blocks, tables.begin());
  const std::vector<int32_t> token_seq{0}, ctx_lens{context};
  const int row_elems = h.num_kv_heads * h.head_dim, k = h.num_q_heads * h.head_dim;
  const int q_stride = k + 2 * row_elems, kv_elems = num_blocks * block_size * row_elems;
  const std::vector<float> kc = RandomBf16(kv_elems, -1.f, 1.f, rng),
                           vc = RandomBf16(kv_elems, -1.f, 1.f, rng);
  const std::vector<float> q = RandomBf16(q_stride, -1.f, 1.f, rng);
  const std::vector<float> w = RandomBf16(static_cast<size_t>(h.n) * k, -0.1f, 0.1f, rng);
  const std::vector<float> residual = RandomBf16(h.n, -2.f, 2.f, rng);
  DeviceArray<__nv_bfloat16> d_q(ToBf16(q)), d_k(ToBf16(kc)), d_v(ToBf16(vc)), d_w(ToBf16(w)),
      d_out_combined(k), d_out_unmerged(k), d_res_combined(ToBf16(residual)), d_res_merged(ToBf16(residual));
  DeviceArray<int32_t> d_tables(tables), d_token_seq(token_seq), d_ctx(ctx_lens);
  const size_t ws_bytes = PagedAttentionWorkspaceBytes(1, h.num_q_heads, h.num_kv_heads, h.head_dim);
  DeviceArray<float> d_ws_combined(ws_bytes / sizeof(float)), d_ws_merged(ws_bytes / sizeof(float));
  d_ws_merged.Poison();
  d_out_unmerged.Poison();  // read only where the attention has one split and writes it
  const float scale = 1.f / std::sqrt(static_cast<float>(h.head_dim));
  AttentionShape shape{1,          h.num_q_heads, h.num_kv_heads, h.head_dim, block_size,
                       max_blocks, max_context,   q_stride,       scale};
  shape.one_token_per_seq = true;
  ASSERT_TRUE(MergeResidualGemvTakes(1, k));

  PagedAttention(d_q.get(), d_k.get(), d_v.get(), d_tables.get(), d_token_seq.get(), d_ctx.get(),
                 d_out_combined.get(), d_ws_combined.get(), ws_bytes, shape, nullptr);
  ResidualGemv(d_out_combined.get(), d_w.get(), d_res_combined.get(), 1, h.n, k, nullptr);
  const AttentionPartials partials =
      PagedAttentionUnmerged(d_q.get(), d_k.get(), d_v.get(), d_tables.get(), d_token_seq.get(), d_ctx.get(),
                             d_out_unmerged.get(), d_ws_merged.get(), ws_bytes, shape, nullptr);
  MergeResidualGemv(partials, d_w.get(), d_res_merged.get(), nullptr, h.n, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<__nv_bfloat16> want_bits = d_res_combined.Download(), got_bits = d_res_merged.Download();
  EXPECT_EQ(Bits(got_bits), Bits(want_bits))
      << "context " << context << " in " << max_context << ", " << partials.splits << " splits, heads "
      << h.num_q_heads << "/" << h.num_kv_heads << " x " << h.head_dim << ", n " << h.n;

  // The independent reference: attention in fp32 rounded to bf16, times o_proj, added to the residual.
  std::vector<float> attn(k);
  const reference::AttentionInputs in{
      q.data(),      kc.data(),      vc.data(),  tables.data(), token_seq.data(), ctx_lens.data(), 1,
      h.num_q_heads, h.num_kv_heads, h.head_dim, block_size,    max_blocks,       q_stride,        scale};
  reference::PagedAttention(in, attn.data());
  const std::vector<float> product = testing::LinearRef(testing::Rounded(attn), w, nullptr, 1, h.n, k);
  std::vector<float> want(h.n);
  for (int i = 0; i < h.n; ++i) want[i] = reference::RoundBf16(residual[i] + product[i]);
  EXPECT_TRUE(AllClose(ToFloat(got_bits), want, 2e-2f, 2e-2f)) << "context " << context;

  // Again on the same buffers, from the same residual: the same bits.
  d_res_merged.Upload(ToBf16(residual));
  d_ws_merged.Poison();
  MergeResidualGemv(
      PagedAttentionUnmerged(d_q.get(), d_k.get(), d_v.get(), d_tables.get(), d_token_seq.get(), d_ctx.get(),
                             d_out_unmerged.get(), d_ws_merged.get(), ws_bytes, shape, nullptr),
      d_w.get(), d_res_merged.get(), nullptr, h.n, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_EQ(Bits(d_res_merged.Download()), Bits(got_bits)) << "second run, context " << context;
}

// Contexts of one split, of a few, of exactly one batch of partials and of several (the merge folds 16 splits
// at a time), in buckets as graphs capture them; Qwen2.5-0.5B's heads, a full row of 1,024 at head_dim 64
// and 128, and output sizes that leave a block partly empty.
TEST(MergeResidualGemvTest, EqualsCombineThenResidualGemv) {
  DOZE_SKIP_WITHOUT_GPU();
  const std::vector<Shape> shapes{{14, 2, 64, 896}, {16, 2, 64, 200}, {8, 2, 128, 72}, {4, 4, 64, 100}};
  const std::vector<std::pair<int, int>> contexts{{1, 1},       {17, 32},     {64, 128},    {65, 1024},
                                                  {511, 512},   {600, 1024},  {1000, 1024}, {2049, 4096},
                                                  {3000, 4096}, {5000, 8192}, {9000, 16384}};
  uint32_t seed = 100;
  for (const Shape& h : shapes) {
    for (const auto& [context, bucket] : contexts) CheckMergedOProj(context, bucket, h, ++seed);
  }
}

TEST(MergeResidualGemvTest, TakesOneRowOfAtMost1024) {
  EXPECT_TRUE(MergeResidualGemvTakes(1, 896));
  EXPECT_TRUE(MergeResidualGemvTakes(1, 1024));
  EXPECT_FALSE(MergeResidualGemvTakes(2, 896));
  EXPECT_FALSE(MergeResidualGemvTakes(1, 1032));
  EXPECT_FALSE(MergeResidualGemvTakes(1, 900));
}

}  // namespace
}  // namespace doze::kernels

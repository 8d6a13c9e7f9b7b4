// PagedAttention (decode with flash-decoding splits, prefill with cached prefixes) against a dense CPU
// reference.
#include "kernels/paged_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tests/kernels/kernel_test_util.h"

namespace doze::kernels {
namespace {

using testing::AllClose;
using testing::DeviceArray;
using testing::RandomBf16;
using testing::ToBf16;
using testing::ToFloat;

struct SeqSpec {
  int query_len;    // new tokens this step
  int context_len;  // keys after this step
};

struct HeadSpec {
  int num_q_heads, num_kv_heads, head_dim;
};

// Lays the sequences into a shuffled paged cache full of random K/V, runs the kernel, compares with the
// reference. `extra_context` raises max_context above the longest sequence, as a captured decode graph does.
void CheckAttention(const std::vector<SeqSpec>& seqs, HeadSpec h, int extra_context, uint32_t seed) {
  const int block_size = 16;
  int max_ctx = 0, max_blocks = 0, num_tokens = 0;
  for (const SeqSpec& s : seqs) {
    max_ctx = std::max(max_ctx, s.context_len);
    max_blocks = std::max(max_blocks, (s.context_len + block_size - 1) / block_size);
    num_tokens += s.query_len;
  }
  const int num_blocks = max_blocks * static_cast<int>(seqs.size()) + 3;
  std::mt19937 rng(seed);
  std::vector<int32_t> all_blocks(num_blocks), tables(seqs.size() * max_blocks, -1), token_seq, ctx_lens;
  std::iota(all_blocks.begin(), all_blocks.end(), 0);
  std::shuffle(all_blocks.begin(), all_blocks.end(), rng);
  int next_block = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    for (int b = 0; b * block_size < seqs[s].context_len; ++b)
      tables[s * max_blocks + b] = all_blocks[next_block++];
    for (int j = 0; j < seqs[s].query_len; ++j) {
      token_seq.push_back(static_cast<int32_t>(s));
      ctx_lens.push_back(seqs[s].context_len - seqs[s].query_len + j + 1);
    }
  }
  const int kv_elems = num_blocks * block_size * h.num_kv_heads * h.head_dim;
  const int q_stride = (h.num_q_heads + 2 * h.num_kv_heads) * h.head_dim;
  const std::vector<float> k = RandomBf16(kv_elems, -1.f, 1.f, rng), v = RandomBf16(kv_elems, -1.f, 1.f, rng);
  const std::vector<float> q = RandomBf16(static_cast<size_t>(num_tokens) * q_stride, -1.f, 1.f, rng);
  DeviceArray<__nv_bfloat16> d_q(ToBf16(q)), d_k(ToBf16(k)), d_v(ToBf16(v)),
      d_out(static_cast<size_t>(num_tokens) * h.num_q_heads * h.head_dim);
  DeviceArray<int32_t> d_tables(tables), d_token_seq(token_seq), d_ctx(ctx_lens);
  const size_t ws_bytes = PagedAttentionWorkspaceBytes(num_tokens, h.num_q_heads, h.num_kv_heads, h.head_dim);
  DeviceArray<float> d_ws(ws_bytes / sizeof(float));
  d_out.Poison();
  const float scale = 1.f / std::sqrt(static_cast<float>(h.head_dim));
  const AttentionShape shape{num_tokens, h.num_q_heads,           h.num_kv_heads, h.head_dim, block_size,
                             max_blocks, max_ctx + extra_context, q_stride,       scale};
  PagedAttention(d_q.get(), d_k.get(), d_v.get(), d_tables.get(), d_token_seq.get(), d_ctx.get(), d_out.get(),
                 d_ws.get(), ws_bytes, shape, nullptr);
  std::vector<float> want(d_out.size());
  const reference::AttentionInputs in{
      q.data(),      k.data(),       v.data(),   tables.data(), token_seq.data(), ctx_lens.data(), num_tokens,
      h.num_q_heads, h.num_kv_heads, h.head_dim, block_size,    max_blocks,       q_stride,        scale};
  reference::PagedAttention(in, want.data());
  EXPECT_TRUE(AllClose(ToFloat(d_out.Download()), want, 1e-2f, 1e-2f))
      << seqs.size() << " sequences, max context " << max_ctx << ", head_dim " << h.head_dim;
  // A second call on the same workspace gives the same result (nothing carries over between calls).
  d_out.Poison();
  PagedAttention(d_q.get(), d_k.get(), d_v.get(), d_tables.get(), d_token_seq.get(), d_ctx.get(), d_out.get(),
                 d_ws.get(), ws_bytes, shape, nullptr);
  EXPECT_TRUE(AllClose(ToFloat(d_out.Download()), want, 1e-2f, 1e-2f)) << "second call on the same workspace";
}

constexpr HeadSpec kQwen05{14, 2, 64};

class DecodeTest : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(DecodeTest, MatchesReference) {
  DOZE_SKIP_WITHOUT_GPU();
  const auto [batch, context] = GetParam();
  std::vector<SeqSpec> seqs;
  for (int i = 0; i < batch; ++i) seqs.push_back({1, std::max(1, context - (i * 37) % context)});
  CheckAttention(seqs, kQwen05, 0, batch * 10007 + context);
  CheckAttention(seqs, kQwen05, 3000, batch * 10007 + context + 1);
}

INSTANTIATE_TEST_SUITE_P(BatchContext, DecodeTest,
                         ::testing::Combine(::testing::Values(1, 3, 19, 64),
                                            ::testing::Values(1, 17, 511, 2049)));

TEST(PrefillTest, SinglePrompts) {
  DOZE_SKIP_WITHOUT_GPU();
  for (int len : {1, 17, 511}) CheckAttention({{len, len}}, kQwen05, 0, len);
}

TEST(PrefillTest, CachedPrefixesMixedWithDecode) {
  DOZE_SKIP_WITHOUT_GPU();
  CheckAttention({{17, 40}, {1, 300}, {64, 2049}, {5, 5}, {1, 1}}, kQwen05, 0, 5);
}

TEST(PrefillTest, HeadDim128AndFullGroup) {
  DOZE_SKIP_WITHOUT_GPU();
  CheckAttention({{19, 19}, {1, 700}, {3, 150}}, HeadSpec{16, 2, 128}, 0, 7);
  CheckAttention({{1, 2049}}, HeadSpec{8, 8, 128}, 0, 8);
}

}  // namespace
}  // namespace doze::kernels

// PagedAttention (decode with flash-decoding splits, prefill with cached prefixes) against a dense CPU
// reference; PagedAttentionWithRotary against RotaryAndCacheWrite followed by PagedAttention.
#include "kernels/paged_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/rotary_kv_cache.h"
#include "tests/kernels/delayed_copy.h"
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

// Copies `values` with every sequence's newest key (K or V, all KV heads) set to NaN.
std::vector<float> WithNewestKeysPoisoned(std::vector<float> values, const std::vector<SeqSpec>& seqs,
                                          const std::vector<int32_t>& tables, int max_blocks, int block_size,
                                          int row_elems) {
  for (size_t s = 0; s < seqs.size(); ++s) {
    if (seqs[s].context_len == 0) continue;  // a padding row
    const int key = seqs[s].context_len - 1;
    const int64_t slot =
        static_cast<int64_t>(tables[s * max_blocks + key / block_size]) * block_size + key % block_size;
    std::fill_n(values.begin() + slot * row_elems, row_elems, std::nanf(""));
  }
  return values;
}

// Lays the sequences into a shuffled paged cache full of random K/V, runs the kernel, compares with the
// reference. `extra_context` raises max_context above the longest sequence, as a captured decode graph does.
// Decode batches (one new token per sequence) run with one_token_per_seq; with `newest_keys_late` the cache
// starts with each sequence's newest key poisoned and a kernel just before the attention writes it late, as
// the QKV kernel before it does in a decode step: the attention must read those keys only after its wait.
void CheckAttention(const std::vector<SeqSpec>& seqs, HeadSpec h, int extra_context, uint32_t seed,
                    bool newest_keys_late = false) {
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
  const bool one_token_per_seq =
      std::all_of(seqs.begin(), seqs.end(), [](const SeqSpec& s) { return s.query_len == 1; });
  ASSERT_TRUE(one_token_per_seq || !newest_keys_late);
  const int row_elems = h.num_kv_heads * h.head_dim;
  DeviceArray<__nv_bfloat16> d_q(ToBf16(q)),
      d_k(ToBf16(newest_keys_late ? WithNewestKeysPoisoned(k, seqs, tables, max_blocks, block_size, row_elems)
                                  : k)),
      d_v(ToBf16(newest_keys_late ? WithNewestKeysPoisoned(v, seqs, tables, max_blocks, block_size, row_elems)
                                  : v)),
      d_k_late(ToBf16(k)), d_v_late(ToBf16(v)),
      d_out(static_cast<size_t>(num_tokens) * h.num_q_heads * h.head_dim);
  DeviceArray<int32_t> d_tables(tables), d_token_seq(token_seq), d_ctx(ctx_lens);
  const size_t ws_bytes = PagedAttentionWorkspaceBytes(num_tokens, h.num_q_heads, h.num_kv_heads, h.head_dim);
  DeviceArray<float> d_ws(ws_bytes / sizeof(float));
  d_ws.Poison();  // nothing in it may be read before the call writes it
  d_out.Poison();
  const float scale = 1.f / std::sqrt(static_cast<float>(h.head_dim));
  AttentionShape shape{num_tokens, h.num_q_heads,           h.num_kv_heads, h.head_dim, block_size,
                       max_blocks, max_ctx + extra_context, q_stride,       scale};
  shape.one_token_per_seq = one_token_per_seq;
  cudaStream_t stream = nullptr;
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  if (newest_keys_late) {
    testing::LaunchDelayedCopy(d_k_late.get(), d_k.get(), d_v_late.get(), d_v.get(), d_k.size(), 50, stream);
  }
  PagedAttention(d_q.get(), d_k.get(), d_v.get(), d_tables.get(), d_token_seq.get(), d_ctx.get(), d_out.get(),
                 d_ws.get(), ws_bytes, shape, stream);
  CUDA_CHECK(cudaStreamSynchronize(stream));
  CUDA_CHECK(cudaStreamDestroy(stream));
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

// Padding rows (no keys, as a decode graph's unused rows) get zeros, beside rows whose context is split
// over blocks.
TEST(DecodeTest, PaddingRowsGetZeros) {
  DOZE_SKIP_WITHOUT_GPU();
  const std::vector<SeqSpec> seqs{{1, 700}, {1, 0}, {1, 33}, {1, 0}, {1, 2049}};
  CheckAttention(seqs, kQwen05, 0, 31);
  CheckAttention(seqs, kQwen05, 3000, 32, /*newest_keys_late=*/true);
  CheckAttention({{1, 0}, {1, 300}}, HeadSpec{16, 2, 128}, 500, 33);
}

// The keys before each row's newest are read while the kernel before the attention still runs; the newest
// only after it.
TEST(DecodeEarlyReadsTest, NewestKeyReadAfterThePreviousKernel) {
  DOZE_SKIP_WITHOUT_GPU();
  for (int context : {1, 17, 33, 511, 2049}) {
    std::vector<SeqSpec> seqs;
    for (int i = 0; i < 19; ++i) seqs.push_back({1, std::max(1, context - (i * 37) % context)});
    CheckAttention(seqs, kQwen05, 0, context, /*newest_keys_late=*/true);
    CheckAttention(seqs, kQwen05, 1000, context + 1, /*newest_keys_late=*/true);
  }
  CheckAttention({{1, 700}, {1, 150}, {1, 1}}, HeadSpec{16, 2, 128}, 0, 9, /*newest_keys_late=*/true);
}

// Decode batches from 17 rows in context buckets of up to 1,024 keys (and at 64 rows, whose blocks fill an
// H100, at any context) take one block per row and KV head: contexts that fit its chunk buffers (up to 768
// keys), ones that reuse them, the newest key in the first chunks and in a later one, rows of very different
// lengths in one grid.
TEST(WholeContextDecodeTest, MatchesReference) {
  DOZE_SKIP_WITHOUT_GPU();
  for (int rows : {17, 40, 64}) {
    for (int context : {1, 17, 255, 700, 768, 769, 1000, 1024}) {
      std::vector<SeqSpec> seqs;
      for (int i = 0; i < rows; ++i) seqs.push_back({1, std::max(1, context - (i * 131) % context)});
      CheckAttention(seqs, kQwen05, 0, rows * 7919 + context, /*newest_keys_late=*/true);
      CheckAttention(seqs, kQwen05, 1024 - context, rows * 7919 + context + 1, /*newest_keys_late=*/true);
    }
  }
  std::vector<SeqSpec> long_rows;
  for (int i = 0; i < 64; ++i) long_rows.push_back({1, 2048 - (i * 97) % 1500});
  CheckAttention(long_rows, kQwen05, 0, 11, /*newest_keys_late=*/true);
}

// Decode rows whose QKV is unrotated: the attention rotating Q and the newest K itself and writing the newest
// K and V must give bit for bit what RotaryAndCacheWrite then PagedAttention give, outputs and caches,
// without reading the newest slots (NaN in its cache until it writes them) and leaving the QKV rows as they
// are. Batches of whole blocks: contexts within the early chunks and past them (the newest key in a later
// chunk), padding rows (no context, no cache slot).
class DecodeRotaryTest : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(DecodeRotaryTest, FusedRotaryEqualsRotaryThenAttention) {
  DOZE_SKIP_WITHOUT_GPU();
  const auto [batch, context] = GetParam();
  const HeadSpec h = kQwen05;
  const int block_size = 16, max_blocks = (context + block_size - 1) / block_size, padding = 3;
  const int num_blocks = max_blocks * batch + 3, rows = batch + padding;
  std::mt19937 rng(batch * 31 + context);
  std::vector<int32_t> all_blocks(num_blocks), tables(static_cast<size_t>(rows) * max_blocks, 0);
  std::iota(all_blocks.begin(), all_blocks.end(), 0);
  std::shuffle(all_blocks.begin(), all_blocks.end(), rng);
  std::vector<int32_t> token_seq(rows, 0), ctx_lens(rows, 0), positions(rows, 0), slots(rows, -1);
  std::vector<SeqSpec> seqs;
  for (int s = 0, next = 0; s < batch; ++s) {
    const int len = std::max(1, context - (s * 37) % context);
    seqs.push_back({1, len});
    for (int b = 0; b * block_size < len; ++b) tables[s * max_blocks + b] = all_blocks[next++];
    token_seq[s] = s;
    ctx_lens[s] = len;
    positions[s] = len - 1;
    slots[s] = tables[s * max_blocks + (len - 1) / block_size] * block_size + (len - 1) % block_size;
  }
  const int row_elems = h.num_kv_heads * h.head_dim, kv_elems = num_blocks * block_size * row_elems;
  const int q_stride = (h.num_q_heads + 2 * h.num_kv_heads) * h.head_dim;
  const std::vector<float> k = RandomBf16(kv_elems, -1.f, 1.f, rng), v = RandomBf16(kv_elems, -1.f, 1.f, rng);
  const std::vector<float> qkv = RandomBf16(static_cast<size_t>(rows) * q_stride, -1.f, 1.f, rng);
  const std::vector<float> inv_freq = reference::RopeInvFreq(h.head_dim, 1000000.0);
  DeviceArray<__nv_bfloat16> qkv_a(ToBf16(qkv)), k_a(ToBf16(k)), v_a(ToBf16(v)),
      out_a(static_cast<size_t>(rows) * h.num_q_heads * h.head_dim);
  DeviceArray<__nv_bfloat16> qkv_b(ToBf16(qkv)), out_b(out_a.size()),
      k_b(ToBf16(WithNewestKeysPoisoned(k, seqs, tables, max_blocks, block_size, row_elems))),
      v_b(ToBf16(WithNewestKeysPoisoned(v, seqs, tables, max_blocks, block_size, row_elems)));
  DeviceArray<int32_t> d_tables(tables), d_seq(token_seq), d_ctx(ctx_lens), d_pos(positions), d_slots(slots);
  DeviceArray<float> d_freq(inv_freq);
  const size_t ws_bytes = PagedAttentionWorkspaceBytes(rows, h.num_q_heads, h.num_kv_heads, h.head_dim);
  DeviceArray<float> ws(ws_bytes / sizeof(float));
  out_a.Poison();
  out_b.Poison();
  AttentionShape shape{rows,       h.num_q_heads, h.num_kv_heads,
                       h.head_dim, block_size,    max_blocks,
                       context,    q_stride,      1.f / std::sqrt(static_cast<float>(h.head_dim))};
  shape.one_token_per_seq = true;
  ASSERT_TRUE(PagedAttentionRotates(shape));
  RotaryAndCacheWrite(qkv_a.get(), d_pos.get(), d_slots.get(), d_freq.get(), k_a.get(), v_a.get(),
                      {rows, h.num_q_heads, h.num_kv_heads, h.head_dim, block_size}, nullptr);
  PagedAttention(qkv_a.get(), k_a.get(), v_a.get(), d_tables.get(), d_seq.get(), d_ctx.get(), out_a.get(),
                 ws.get(), ws_bytes, shape, nullptr);
  PagedAttentionWithRotary(qkv_b.get(), k_b.get(), v_b.get(), d_tables.get(), d_seq.get(), d_ctx.get(),
                           out_b.get(), ws.get(), ws_bytes, shape,
                           {d_pos.get(), d_slots.get(), d_freq.get(), k_b.get(), v_b.get()}, nullptr);
  EXPECT_EQ(ToFloat(out_a.Download()), ToFloat(out_b.Download())) << "outputs differ";
  EXPECT_EQ(ToFloat(k_a.Download()), ToFloat(k_b.Download())) << "K caches differ";
  EXPECT_EQ(ToFloat(v_a.Download()), ToFloat(v_b.Download())) << "V caches differ";
  EXPECT_EQ(ToFloat(qkv_b.Download()), qkv) << "the unrotated rows were written";
}

INSTANTIATE_TEST_SUITE_P(BatchContext, DecodeRotaryTest,
                         ::testing::Combine(::testing::Values(17, 61), ::testing::Values(1, 17, 700, 1000)));

// Launches the fused rotary does not take: the split kernel's (up to 16 rows), head_dim 128, prefill.
TEST(DecodeRotaryTest, OnlyWholeBlocksRotate) {
  DOZE_SKIP_WITHOUT_GPU();
  AttentionShape shape{8, 14, 2, 64, 16, 64, 1024, 1152, 0.125f};  // whole blocks from 9 rows
  shape.one_token_per_seq = true;
  EXPECT_FALSE(PagedAttentionRotates(shape));
  shape.num_tokens = 9;
  EXPECT_TRUE(PagedAttentionRotates(shape));
  shape.head_dim = 128;
  EXPECT_FALSE(PagedAttentionRotates(shape));
  shape.head_dim = 64;
  shape.one_token_per_seq = false;
  EXPECT_FALSE(PagedAttentionRotates(shape));
}

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

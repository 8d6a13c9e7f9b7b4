// FfnGemv (gate/up, SwiGLU and down for one row, down's sums left as fixed-point pending sums) against the
// CPU references, run to run, and against the two GEMVs it replaces; and the pending sums taken by the
// kernels after it (the normalizing GEMVs' staging, MergeResidualGemv) exactly as the reference adds them.
#include "kernels/ffn_gemv.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kernels/decode_gemv.h"
#include "kernels/merge_residual_gemv.h"
#include "kernels/paged_attention.h"
#include "tests/kernels/kernel_test_util.h"

namespace doze::kernels {
namespace {

using testing::AllClose;
using testing::DeviceArray;
using testing::LinearRef;
using testing::RandomBf16;
using testing::Rounded;
using testing::ToBf16;
using testing::ToFloat;

constexpr float kEps = 1e-6f;

struct FfnShape {
  int hidden, intermediate;
};

std::vector<uint16_t> Bits(const std::vector<__nv_bfloat16>& v) {
  std::vector<uint16_t> bits(v.size());
  std::memcpy(bits.data(), v.data(), v.size() * sizeof(uint16_t));
  return bits;
}

// The residual stream after the feed-forward half, by the CPU references: bf16(residual + bf16(down(act)))
// with act = bf16(silu(g) * u) of the normalized row. `down_sums` gets down's fp32 sums.
std::vector<float> FfnRef(const std::vector<float>& residual, const std::vector<float>& norm_w,
                          const std::vector<float>& gate_up, const std::vector<float>& down, FfnShape s,
                          std::vector<float>* down_sums) {
  std::vector<float> normed(s.hidden);
  reference::RmsNorm(nullptr, residual.data(), norm_w.data(), normed.data(), 1, s.hidden, kEps);
  const std::vector<float> gu = LinearRef(Rounded(normed), gate_up, nullptr, 1, 2 * s.intermediate, s.hidden);
  std::vector<float> act(s.intermediate);
  reference::SiluMul(gu.data(), act.data(), 1, s.intermediate);
  down_sums->assign(s.hidden, 0.f);
  reference::Linear(Rounded(act).data(), down.data(), nullptr, down_sums->data(), 1, s.hidden,
                    s.intermediate);
  std::vector<float> out(s.hidden);
  for (int i = 0; i < s.hidden; ++i)
    out[i] = reference::RoundBf16(residual[i] + reference::RoundBf16((*down_sums)[i]));
  return out;
}

class FfnGemvTest : public ::testing::TestWithParam<FfnShape> {};

// Qwen2.5-0.5B's shape, a hidden size that leaves lanes and threads without a piece, the largest hidden size,
// one group, more groups than the grid's rounds cover evenly, and more rounds than the up rows' copy stages
// (on the H100's 132 blocks: 529 groups, five rounds, the last with one group).
INSTANTIATE_TEST_SUITE_P(Shapes, FfnGemvTest,
                         ::testing::Values(FfnShape{896, 4864}, FfnShape{136, 208}, FfnShape{1024, 96},
                                           FfnShape{64, 16}, FfnShape{72, 2128}, FfnShape{64, 8464}));

TEST_P(FfnGemvTest, MatchesReferenceAndTheTwoGemvs) {
  DOZE_SKIP_WITHOUT_GPU();
  const FfnShape s = GetParam();
  std::mt19937 rng(s.hidden * 31 + s.intermediate);
  const std::vector<float> residual = RandomBf16(s.hidden, -2.f, 2.f, rng);
  const std::vector<float> norm_w = RandomBf16(s.hidden, 0.5f, 1.5f, rng);
  const float gu_bound = 2.f / std::sqrt(static_cast<float>(s.hidden));
  const float down_bound = 2.f / std::sqrt(static_cast<float>(s.intermediate));
  const std::vector<float> gate_up =
      RandomBf16(static_cast<size_t>(2 * s.intermediate) * s.hidden, -gu_bound, gu_bound, rng);
  const std::vector<float> down =
      RandomBf16(static_cast<size_t>(s.hidden) * s.intermediate, -down_bound, down_bound, rng);
  DeviceArray<__nv_bfloat16> d_res(ToBf16(residual)), d_norm(ToBf16(norm_w)), d_gu(ToBf16(gate_up)),
      d_down(ToBf16(down)), d_act(s.intermediate), d_res_gemv(ToBf16(residual));
  DeviceArray<int64_t> d_pending(std::vector<int64_t>(s.hidden, 0));
  ASSERT_TRUE(FfnGemvTakes(1, s.hidden, s.intermediate));
  FfnGemv({d_res.get(), d_norm.get(), kEps}, d_gu.get(), d_down.get(), d_pending.get(), s.hidden,
          s.intermediate, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<int64_t> once = d_pending.Download();

  std::vector<float> want_sums;
  const std::vector<float> want = FfnRef(residual, norm_w, gate_up, down, s, &want_sums);
  std::vector<float> got_sums(s.hidden), got(s.hidden);
  for (int i = 0; i < s.hidden; ++i) {
    got_sums[i] = reference::PendingValue(once[i]);
    got[i] = reference::WithPending(residual[i], once[i]);
  }
  EXPECT_TRUE(AllClose(got_sums, want_sums, 2e-2f, 2e-2f));
  EXPECT_TRUE(AllClose(got, want, 2e-2f, 2e-2f));

  // The two GEMVs it replaces: the same activations, down's sums in another fp32 order.
  NormSwiGluGemv({d_res.get(), d_norm.get(), kEps}, d_gu.get(), d_act.get(), 1, s.intermediate, s.hidden,
                 nullptr);
  ResidualGemv(d_act.get(), d_down.get(), d_res_gemv.get(), 1, s.hidden, s.intermediate, nullptr);
  EXPECT_TRUE(AllClose(got, ToFloat(d_res_gemv.Download()), 1e-2f, 1e-2f));

  // Again onto what it left: every sum exactly twice the first (integer additions, whatever their order).
  FfnGemv({d_res.get(), d_norm.get(), kEps}, d_gu.get(), d_down.get(), d_pending.get(), s.hidden,
          s.intermediate, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<int64_t> twice = d_pending.Download();
  for (int i = 0; i < s.hidden; ++i) ASSERT_EQ(twice[i], 2 * once[i]) << "row " << i;
}

TEST(FfnGemvTakesTest, OneRowOfSupportedSizes) {
  EXPECT_TRUE(FfnGemvTakes(1, 896, 4864));
  EXPECT_TRUE(FfnGemvTakes(1, 1024, 16));
  EXPECT_FALSE(FfnGemvTakes(1, 1024, 8));
  EXPECT_FALSE(FfnGemvTakes(2, 896, 4864));
  EXPECT_FALSE(FfnGemvTakes(1, 1032, 4864));
  EXPECT_FALSE(FfnGemvTakes(1, 900, 4864));
  EXPECT_FALSE(FfnGemvTakes(1, 896, 0));
  EXPECT_FALSE(FfnGemvTakes(1, 896, 4860));
}

// Pending sums of both signs, large and small, and zero.
std::vector<int64_t> RandomPending(size_t n, std::mt19937& rng) {
  std::vector<int64_t> out(n);
  const std::vector<float> values = RandomBf16(n, -3.f, 3.f, rng);
  for (size_t i = 0; i < n; ++i)
    out[i] = i % 17 == 0 ? 0 : reference::ToPending(values[i] * (i % 5 == 0 ? 1e-3f : 1.f));
  return out;
}

// The normalizing GEMVs stage bf16(residual + bf16(sum)) (at one and two rows): the same bits as on a
// residual stream the reference updated first.
TEST(PendingResidualTest, NormalizingGemvStagesTheSum) {
  DOZE_SKIP_WITHOUT_GPU();
  const int hidden = 896, intermediate = 200;
  std::mt19937 rng(7);
  for (int m : {1, 2}) {
    const std::vector<float> residual = RandomBf16(static_cast<size_t>(m) * hidden, -2.f, 2.f, rng);
    const std::vector<int64_t> pending = RandomPending(residual.size(), rng);
    std::vector<float> updated(residual.size());
    for (size_t i = 0; i < residual.size(); ++i) updated[i] = reference::WithPending(residual[i], pending[i]);
    const std::vector<float> norm_w = RandomBf16(hidden, 0.5f, 1.5f, rng);
    const std::vector<float> w =
        RandomBf16(static_cast<size_t>(2 * intermediate) * hidden, -0.07f, 0.07f, rng);
    DeviceArray<__nv_bfloat16> d_res(ToBf16(residual)), d_updated(ToBf16(updated)), d_norm(ToBf16(norm_w)),
        d_w(ToBf16(w)), d_act(static_cast<size_t>(m) * intermediate), d_want(d_act.size());
    DeviceArray<int64_t> d_pending(pending);
    d_act.Poison();
    NormSwiGluGemv({d_res.get(), d_norm.get(), kEps, d_pending.get()}, d_w.get(), d_act.get(), m,
                   intermediate, hidden, nullptr);
    NormSwiGluGemv({d_updated.get(), d_norm.get(), kEps}, d_w.get(), d_want.get(), m, intermediate, hidden,
                   nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_EQ(Bits(d_act.Download()), Bits(d_want.Download())) << "m=" << m;
    EXPECT_EQ(ToFloat(d_res.Download()), residual) << "the stream in memory stays as it was";
    EXPECT_EQ(d_pending.Download(), pending) << "the sums stay for o_proj";
  }
}

// MergeResidualGemv takes the sums into the residual it updates and zeroes them: the same bits as on a
// residual stream the reference updated first.
TEST(PendingResidualTest, MergedOProjTakesAndZeroesTheSum) {
  DOZE_SKIP_WITHOUT_GPU();
  const int q_heads = 14, kv_heads = 2, head_dim = 64, n = 896, block_size = 16, context = 600, bucket = 1024;
  const int max_blocks = bucket / block_size;
  const int k = q_heads * head_dim, row_elems = kv_heads * head_dim, q_stride = k + 2 * row_elems;
  std::mt19937 rng(11);
  std::vector<int32_t> tables(max_blocks);
  for (int i = 0; i < max_blocks; ++i) tables[i] = i;
  const size_t kv_elems = static_cast<size_t>(max_blocks) * block_size * row_elems;
  const std::vector<float> kc = RandomBf16(kv_elems, -1.f, 1.f, rng),
                           vc = RandomBf16(kv_elems, -1.f, 1.f, rng);
  const std::vector<float> q = RandomBf16(q_stride, -1.f, 1.f, rng);
  const std::vector<float> w = RandomBf16(static_cast<size_t>(n) * k, -0.1f, 0.1f, rng);
  const std::vector<float> residual = RandomBf16(n, -2.f, 2.f, rng);
  const std::vector<int64_t> pending = RandomPending(n, rng);
  std::vector<float> updated(n);
  for (int i = 0; i < n; ++i) updated[i] = reference::WithPending(residual[i], pending[i]);
  DeviceArray<__nv_bfloat16> d_q(ToBf16(q)), d_k(ToBf16(kc)), d_v(ToBf16(vc)), d_w(ToBf16(w)), d_out(k),
      d_res(ToBf16(residual)), d_res_want(ToBf16(updated));
  DeviceArray<int32_t> d_tables(tables), d_token_seq(std::vector<int32_t>{0}),
      d_ctx(std::vector<int32_t>{context});
  DeviceArray<int64_t> d_pending(pending);
  const size_t ws_bytes = PagedAttentionWorkspaceBytes(1, q_heads, kv_heads, head_dim);
  DeviceArray<float> d_ws(ws_bytes / sizeof(float));
  AttentionShape shape{1,        q_heads,    kv_heads,
                       head_dim, block_size, max_blocks,
                       bucket,   q_stride,   1.f / std::sqrt(static_cast<float>(head_dim))};
  shape.one_token_per_seq = true;
  const AttentionPartials partials =
      PagedAttentionUnmerged(d_q.get(), d_k.get(), d_v.get(), d_tables.get(), d_token_seq.get(), d_ctx.get(),
                             d_out.get(), d_ws.get(), ws_bytes, shape, nullptr);
  MergeResidualGemv(partials, d_w.get(), d_res.get(), d_pending.get(), n, nullptr);
  MergeResidualGemv(partials, d_w.get(), d_res_want.get(), nullptr, n, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_EQ(Bits(d_res.Download()), Bits(d_res_want.Download()));
  EXPECT_EQ(d_pending.Download(), std::vector<int64_t>(n, 0));
}

}  // namespace
}  // namespace doze::kernels

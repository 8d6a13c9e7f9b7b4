// The fused decode projections against the unfused CPU references: the GEMVs (rows 1 to 8, the RmsNorm in
// their prologue) and the tensor-core kernels (rows 1 to 64, x already normalized): Linear then Rotary with
// the cache writes, Linear then SiluMul, Linear then the residual add (and the norm after it) or a plain
// store. Qwen2.5-0.5B's shapes (down_proj splits k) and an odd small one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>

#include "kernels/decode_gemv.h"
#include "kernels/decode_mma.h"
#include "kernels/decode_tma_swiglu.h"
#include "kernels/rms_norm.h"
#include "tests/kernels/kernel_test_util.h"

namespace doze::kernels {
namespace {

using testing::AllClose;
using testing::DeviceArray;
using testing::ExpectCacheRows;
using testing::LinearRef;
using testing::RandomBf16;
using testing::Rounded;
using testing::ToBf16;
using testing::ToFloat;

struct DecodeShape {
  int hidden, intermediate, q_heads, kv_heads, head_dim;
};

constexpr float kEps = 1e-6f;
constexpr int kBlockSize = 16, kNumBlocks = 7;

// RmsNorm(residual) * weight, rounded to bf16 as the kernels store it.
std::vector<float> NormRef(const std::vector<float>& residual, const std::vector<float>& weight, int m,
                           int hidden) {
  std::vector<float> out(residual.size());
  reference::RmsNorm(nullptr, residual.data(), weight.data(), out.data(), m, hidden, kEps);
  return Rounded(out);
}

// Which kernels a test runs: the GEMVs with the norm in their prologue, or the tensor-core kernels on the
// normalized rows.
enum class Path { kGemv, kMma };

class DecodeProjectionTest : public ::testing::TestWithParam<std::tuple<Path, int, DecodeShape>> {
 protected:
  Path path() const { return std::get<0>(GetParam()); }
  int m() const { return std::get<1>(GetParam()); }
  const DecodeShape& s() const { return std::get<2>(GetParam()); }

  // The tensor-core kernels' scratch for the largest projection of the shape.
  DecodeMmaWorkspace Workspace() {
    const DecodeShape& c = s();
    size_t bytes = 0;
    for (const auto& [n, k] : {std::pair{2 * c.intermediate, c.hidden}, std::pair{c.hidden, c.intermediate},
                               std::pair{(c.q_heads + 2 * c.kv_heads) * c.head_dim, c.hidden},
                               std::pair{c.hidden, c.q_heads * c.head_dim}}) {
      bytes = std::max(bytes, DecodeMmaWorkspaceBytes(m(), n, k));
    }
    workspace_ = std::make_unique<DeviceArray<char>>(bytes);
    const DecodeMmaWorkspace workspace{workspace_->get(), bytes};
    workspace_->Poison();  // a split sum read before it is written shows as NaN
    return workspace;
  }

  // o_proj's and down_proj's inputs: x [m, k] in [-1, 1) and w [n, k] within 1 / sqrt(k), fresh each call.
  struct ResidualProjection {
    int n, k;
    std::vector<float> x, w;
  };
  std::vector<ResidualProjection> ResidualProjections() {
    const DecodeShape& c = s();
    std::vector<ResidualProjection> out;
    for (const auto& [n, k] :
         {std::pair{c.hidden, c.q_heads * c.head_dim}, std::pair{c.hidden, c.intermediate}}) {
      const float bound = 1.f / std::sqrt(static_cast<float>(k));
      std::vector<float> x = RandomBf16(static_cast<size_t>(m()) * k, -1.f, 1.f, rng_);
      out.push_back({n, k, std::move(x), RandomBf16(static_cast<size_t>(n) * k, -bound, bound, rng_)});
    }
    return out;
  }

  std::mt19937 rng_{static_cast<uint32_t>(std::get<1>(GetParam()) * 977 + std::get<2>(GetParam()).hidden +
                                          static_cast<int>(std::get<0>(GetParam())))};
  std::unique_ptr<DeviceArray<char>> workspace_;
};

TEST_P(DecodeProjectionTest, NormQkvRotaryMatchesUnfused) {
  DOZE_SKIP_WITHOUT_GPU();
  const DecodeShape& c = s();
  const int width = (c.q_heads + 2 * c.kv_heads) * c.head_dim, kv_size = c.kv_heads * c.head_dim;
  const std::vector<float> residual = RandomBf16(static_cast<size_t>(m()) * c.hidden, -2.f, 2.f, rng_);
  const std::vector<float> norm_w = RandomBf16(c.hidden, 0.5f, 1.5f, rng_);
  const float bound = 1.f / std::sqrt(static_cast<float>(c.hidden));
  const std::vector<float> w = RandomBf16(static_cast<size_t>(width) * c.hidden, -bound, bound, rng_);
  const std::vector<float> bias = RandomBf16(width, -0.5f, 0.5f, rng_);
  std::vector<int32_t> positions(m()), slots(kNumBlocks * kBlockSize);
  for (int32_t& p : positions) p = static_cast<int32_t>(rng_() % 32768);
  std::iota(slots.begin(), slots.end(), 0);
  std::shuffle(slots.begin(), slots.end(), rng_);
  slots.resize(m());
  if (m() > 2) slots[1] = -1;  // a padding row writes no cache
  const std::vector<float> inv_freq = reference::RopeInvFreq(c.head_dim, 1000000.0);

  DeviceArray<__nv_bfloat16> d_res(ToBf16(residual)), d_norm(ToBf16(norm_w)), d_w(ToBf16(w)),
      d_bias(ToBf16(bias)), d_qkv(static_cast<size_t>(m()) * width),
      d_k(static_cast<size_t>(kNumBlocks) * kBlockSize * kv_size), d_v(d_k.size());
  DeviceArray<int32_t> d_pos(positions), d_slots(slots);
  DeviceArray<float> d_inv_freq(inv_freq);
  d_qkv.Poison();
  d_k.Poison();
  d_v.Poison();
  const RotaryShape shape{m(), c.q_heads, c.kv_heads, c.head_dim, kBlockSize};
  const RotaryCacheOutput out{d_qkv.get(),      d_pos.get(), d_slots.get(),
                              d_inv_freq.get(), d_k.get(),   d_v.get()};
  const std::vector<float> normed = NormRef(residual, norm_w, m(), c.hidden);
  DeviceArray<__nv_bfloat16> d_x(ToBf16(normed));
  const DecodeMmaWorkspace workspace = Workspace();
  auto run = [&](const RotaryCacheOutput& o) {
    if (path() == Path::kGemv) {
      NormQkvRotaryGemv({d_res.get(), d_norm.get(), kEps}, d_w.get(), d_bias.get(), o, shape, c.hidden,
                        nullptr);
    } else {
      DecodeMmaQkvRotary(d_x.get(), d_w.get(), d_bias.get(), o, shape, c.hidden, workspace, nullptr);
    }
    CUDA_CHECK(cudaDeviceSynchronize());
  };
  run(out);

  // The same with the cos and sin read from the step's table (RotaryTable): bit for bit.
  DeviceArray<float> d_table(static_cast<size_t>(m()) * c.head_dim);
  RotaryTable(d_pos.get(), d_inv_freq.get(), reinterpret_cast<float2*>(d_table.get()), m(), c.head_dim,
              nullptr);
  DeviceArray<__nv_bfloat16> d_qkv2(d_qkv.size()), d_k2(d_k.size()), d_v2(d_v.size());
  d_qkv2.Poison();
  d_k2.Poison();
  d_v2.Poison();
  run({d_qkv2.get(), d_pos.get(), d_slots.get(), d_inv_freq.get(), d_k2.get(), d_v2.get(),
       reinterpret_cast<const float2*>(d_table.get())});
  for (auto [a, b] : {std::pair{&d_qkv, &d_qkv2}, std::pair{&d_k, &d_k2}, std::pair{&d_v, &d_v2}}) {
    const std::vector<__nv_bfloat16> without = a->Download(), with = b->Download();
    EXPECT_EQ(0, std::memcmp(without.data(), with.data(), without.size() * sizeof(__nv_bfloat16)))
        << "m=" << m();
  }

  std::vector<float> want = LinearRef(normed, w, bias.data(), m(), width, c.hidden);
  const std::vector<float> unrotated = want;
  reference::Rotary(want.data(), positions.data(), inv_freq.data(), m(), c.q_heads, c.kv_heads, c.head_dim);
  EXPECT_TRUE(AllClose(ToFloat(d_qkv.Download()), want, 2e-2f, 2e-2f)) << "m=" << m();
  ExpectCacheRows(ToFloat(d_k.Download()), ToFloat(d_v.Download()), want, unrotated, slots, m(), width,
                  static_cast<size_t>(c.q_heads) * c.head_dim, kv_size, 2e-2f, 2e-2f);
}

TEST_P(DecodeProjectionTest, NormSwiGluMatchesUnfused) {
  DOZE_SKIP_WITHOUT_GPU();
  const DecodeShape& c = s();
  const std::vector<float> residual = RandomBf16(static_cast<size_t>(m()) * c.hidden, -2.f, 2.f, rng_);
  const std::vector<float> norm_w = RandomBf16(c.hidden, 0.5f, 1.5f, rng_);
  const float bound = 2.f / std::sqrt(static_cast<float>(c.hidden));
  const std::vector<float> w =
      RandomBf16(static_cast<size_t>(2 * c.intermediate) * c.hidden, -bound, bound, rng_);
  DeviceArray<__nv_bfloat16> d_res(ToBf16(residual)), d_norm(ToBf16(norm_w)), d_w(ToBf16(w)),
      d_act(static_cast<size_t>(m()) * c.intermediate);
  d_act.Poison();
  const std::vector<float> normed = NormRef(residual, norm_w, m(), c.hidden);
  if (path() == Path::kGemv) {
    NormSwiGluGemv({d_res.get(), d_norm.get(), kEps}, d_w.get(), d_act.get(), m(), c.intermediate, c.hidden,
                   nullptr);
  } else {
    DeviceArray<__nv_bfloat16> d_x(ToBf16(normed));
    DecodeMmaSwiGlu(d_x.get(), d_w.get(), d_act.get(), m(), c.intermediate, c.hidden, Workspace(), nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
  }
  const std::vector<float> gate_up = LinearRef(normed, w, nullptr, m(), 2 * c.intermediate, c.hidden);
  std::vector<float> want(static_cast<size_t>(m()) * c.intermediate);
  reference::SiluMul(gate_up.data(), want.data(), m(), c.intermediate);
  EXPECT_TRUE(AllClose(ToFloat(d_act.Download()), want, 2e-2f, 2e-2f)) << "m=" << m();
}

// The box-copy gate/up kernel at every row count (DecodeMmaSwiGlu takes it from 33 rows): against the CPU
// references, and bit for bit against itself run again on the same inputs.
TEST_P(DecodeProjectionTest, TmaSwiGluMatchesUnfused) {
  DOZE_SKIP_WITHOUT_GPU();
  if (path() != Path::kMma) GTEST_SKIP() << "a tensor-core kernel";
  const DecodeShape& c = s();
  const std::vector<float> x = RandomBf16(static_cast<size_t>(m()) * c.hidden, -2.f, 2.f, rng_);
  const float bound = 2.f / std::sqrt(static_cast<float>(c.hidden));
  const std::vector<float> w =
      RandomBf16(static_cast<size_t>(2 * c.intermediate) * c.hidden, -bound, bound, rng_);
  DeviceArray<__nv_bfloat16> d_x(ToBf16(x)), d_w(ToBf16(w)), d_act(static_cast<size_t>(m()) * c.intermediate),
      d_again(static_cast<size_t>(m()) * c.intermediate);
  if (!DecodeTmaSwiGluFits(d_x.get(), d_w.get(), c.hidden))
    GTEST_SKIP() << "no wgmma in this build or on this device";
  d_act.Poison();
  d_again.Poison();
  DecodeTmaSwiGlu(d_x.get(), d_w.get(), d_act.get(), m(), c.intermediate, c.hidden, nullptr);
  DecodeTmaSwiGlu(d_x.get(), d_w.get(), d_again.get(), m(), c.intermediate, c.hidden, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<float> gate_up = LinearRef(x, w, nullptr, m(), 2 * c.intermediate, c.hidden);
  std::vector<float> want(static_cast<size_t>(m()) * c.intermediate);
  reference::SiluMul(gate_up.data(), want.data(), m(), c.intermediate);
  const std::vector<float> got = ToFloat(d_act.Download());
  EXPECT_TRUE(AllClose(got, want, 2e-2f, 2e-2f)) << "m=" << m();
  EXPECT_EQ(got, ToFloat(d_again.Download())) << "m=" << m();
}

TEST_P(DecodeProjectionTest, ResidualAddMatchesUnfused) {
  DOZE_SKIP_WITHOUT_GPU();
  if (path() != Path::kGemv)
    GTEST_SKIP() << "the tensor-core kernels store the projection (StoreMatchesLinear)";
  for (const auto& [n, k, x, w] : ResidualProjections()) {
    const std::vector<float> residual = RandomBf16(static_cast<size_t>(m()) * n, -4.f, 4.f, rng_);
    DeviceArray<__nv_bfloat16> d_x(ToBf16(x)), d_w(ToBf16(w)), d_res(ToBf16(residual));
    ResidualGemv(d_x.get(), d_w.get(), d_res.get(), m(), n, k, nullptr);
    const std::vector<float> proj = LinearRef(x, w, nullptr, m(), n, k);
    std::vector<float> want(residual.size());
    for (size_t i = 0; i < want.size(); ++i) want[i] = reference::RoundBf16(residual[i] + proj[i]);
    EXPECT_TRUE(AllClose(ToFloat(d_res.Download()), want, 3e-2f, 1e-2f)) << "m=" << m() << " k=" << k;
  }
}

// o_proj and down_proj on the tensor-core path: y = bf16(x @ w^T), k split over blocks for down_proj.
TEST_P(DecodeProjectionTest, StoreMatchesLinear) {
  DOZE_SKIP_WITHOUT_GPU();
  if (path() != Path::kMma) GTEST_SKIP() << "the GEMVs add the projection to the residual stream";
  const DecodeMmaWorkspace workspace = Workspace();
  for (const auto& [n, k, x, w] : ResidualProjections()) {
    DeviceArray<__nv_bfloat16> d_x(ToBf16(x)), d_w(ToBf16(w)), d_y(static_cast<size_t>(m()) * n);
    d_y.Poison();
    DecodeMmaStore(d_x.get(), d_w.get(), d_y.get(), m(), n, k, workspace, nullptr);
    EXPECT_TRUE(AllClose(ToFloat(d_y.Download()), LinearRef(x, w, nullptr, m(), n, k), 1e-2f, 1e-2f))
        << "m=" << m() << " k=" << k;
  }
}

// o_proj and down_proj followed by their residual add and norm: against the CPU references, and bit for bit
// against DecodeMmaStore then AddRmsNorm, which one kernel replaces wherever k splits (at Qwen2.5-0.5B's
// shape down's 16 splits at 17-64 rows among them).
TEST_P(DecodeProjectionTest, ResidualNormMatchesStoreThenAddRmsNorm) {
  DOZE_SKIP_WITHOUT_GPU();
  if (path() != Path::kMma) GTEST_SKIP() << "the GEMVs add the projection in their epilogue";
  const DecodeMmaWorkspace workspace = Workspace();
  for (const auto& [n, k, x, w] : ResidualProjections()) {
    const size_t rows = static_cast<size_t>(m()) * n;
    const std::vector<float> residual = RandomBf16(rows, -4.f, 4.f, rng_);
    const std::vector<float> norm_w = RandomBf16(n, 0.5f, 1.5f, rng_);
    DeviceArray<__nv_bfloat16> d_x(ToBf16(x)), d_w(ToBf16(w)), d_norm(ToBf16(norm_w)), d_y(rows),
        d_res(ToBf16(residual)), d_out(rows), d_res2(ToBf16(residual)), d_out2(rows);
    d_out.Poison();
    d_out2.Poison();
    DecodeMmaResidualNorm(d_x.get(), d_w.get(), d_y.get(), m(), n, k,
                          {d_res.get(), d_norm.get(), d_out.get(), kEps}, workspace, nullptr);
    const std::vector<float> got_res = ToFloat(d_res.Download()), got = ToFloat(d_out.Download());

    const std::vector<float> proj = LinearRef(x, w, nullptr, m(), n, k);
    std::vector<float> want_res(rows);
    for (size_t i = 0; i < rows; ++i) want_res[i] = reference::RoundBf16(residual[i] + proj[i]);
    EXPECT_TRUE(AllClose(got_res, want_res, 3e-2f, 1e-2f)) << "m=" << m() << " k=" << k;
    EXPECT_TRUE(AllClose(got, NormRef(got_res, norm_w, m(), n), 1e-2f, 1e-2f)) << "m=" << m() << " k=" << k;

    DecodeMmaStore(d_x.get(), d_w.get(), d_y.get(), m(), n, k, workspace, nullptr);
    AddRmsNorm(d_res2.get(), d_y.get(), d_norm.get(), d_out2.get(), m(), n, kEps, nullptr);
    EXPECT_EQ(got_res, ToFloat(d_res2.Download())) << "m=" << m() << " k=" << k;
    EXPECT_EQ(got, ToFloat(d_out2.Download())) << "m=" << m() << " k=" << k;
  }
}

// The same call three times gives the same bits: the split sums are added in a fixed order.
TEST_P(DecodeProjectionTest, SplitSumsAreDeterministic) {
  DOZE_SKIP_WITHOUT_GPU();
  if (path() != Path::kMma) GTEST_SKIP() << "the GEMVs split k within a block";
  const DecodeShape& c = s();
  const DecodeMmaWorkspace workspace = Workspace();
  const int n = c.hidden, k = c.intermediate;
  DeviceArray<__nv_bfloat16> d_x(ToBf16(RandomBf16(static_cast<size_t>(m()) * k, -1.f, 1.f, rng_))),
      d_w(ToBf16(RandomBf16(static_cast<size_t>(n) * k, -0.1f, 0.1f, rng_))),
      d_y(static_cast<size_t>(m()) * n);
  std::vector<std::vector<float>> runs;
  for (int i = 0; i < 3; ++i) {
    DecodeMmaStore(d_x.get(), d_w.get(), d_y.get(), m(), n, k, workspace, nullptr);
    runs.push_back(ToFloat(d_y.Download()));
  }
  EXPECT_EQ(runs[0], runs[1]);
  EXPECT_EQ(runs[0], runs[2]);
}

INSTANTIATE_TEST_SUITE_P(Gemv, DecodeProjectionTest,
                         ::testing::Combine(::testing::Values(Path::kGemv), ::testing::Values(1, 3, 5, 8),
                                            ::testing::Values(DecodeShape{896, 4864, 14, 2, 64},
                                                              DecodeShape{200, 264, 6, 2, 32})));

INSTANTIATE_TEST_SUITE_P(Mma, DecodeProjectionTest,
                         ::testing::Combine(::testing::Values(Path::kMma),
                                            ::testing::Values(1, 3, 8, 12, 19, 33, 41, 64),
                                            ::testing::Values(DecodeShape{896, 4864, 14, 2, 64},
                                                              DecodeShape{160, 224, 6, 2, 32})));

}  // namespace
}  // namespace doze::kernels

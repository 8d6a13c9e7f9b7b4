// The fused decode GEMVs against the unfused CPU references: RmsNorm then Linear then Rotary with the cache
// writes, RmsNorm then Linear then SiluMul, Linear then the residual add. Rows 1 to 8, Qwen2.5-0.5B's shapes
// (down_proj splits k over warps) and an odd small one.
#include "kernels/decode_gemv.h"

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

struct DecodeShape {
  int hidden, intermediate, q_heads, kv_heads, head_dim;
};

constexpr float kEps = 1e-6f;
constexpr int kBlockSize = 16, kNumBlocks = 7;

std::vector<float> Rounded(std::vector<float> v) {
  for (float& x : v) x = reference::RoundBf16(x);
  return v;
}

// RmsNorm(residual) * weight, rounded to bf16 as the kernels store it.
std::vector<float> NormRef(const std::vector<float>& residual, const std::vector<float>& weight, int m,
                           int hidden) {
  std::vector<float> out(residual.size());
  reference::RmsNorm(nullptr, residual.data(), weight.data(), out.data(), m, hidden, kEps);
  return Rounded(out);
}

std::vector<float> LinearRef(const std::vector<float>& x, const std::vector<float>& w, const float* bias,
                             int m, int n, int k) {
  std::vector<float> y(static_cast<size_t>(m) * n);
  reference::Linear(x.data(), w.data(), bias, y.data(), m, n, k);
  return Rounded(y);
}

class DecodeGemvTest : public ::testing::TestWithParam<std::tuple<int, DecodeShape>> {
 protected:
  int m() const { return std::get<0>(GetParam()); }
  const DecodeShape& s() const { return std::get<1>(GetParam()); }
  std::mt19937 rng_{static_cast<uint32_t>(std::get<0>(GetParam()) * 977 + std::get<1>(GetParam()).hidden)};
};

TEST_P(DecodeGemvTest, NormQkvRotaryMatchesUnfused) {
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
  NormQkvRotaryGemv({d_res.get(), d_norm.get(), kEps}, d_w.get(), d_bias.get(),
                    {d_qkv.get(), d_pos.get(), d_slots.get(), d_inv_freq.get(), d_k.get(), d_v.get()}, shape,
                    c.hidden, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());

  std::vector<float> want =
      LinearRef(NormRef(residual, norm_w, m(), c.hidden), w, bias.data(), m(), width, c.hidden);
  const std::vector<float> unrotated = want;
  reference::Rotary(want.data(), positions.data(), inv_freq.data(), m(), c.q_heads, c.kv_heads, c.head_dim);
  EXPECT_TRUE(AllClose(ToFloat(d_qkv.Download()), want, 2e-2f, 2e-2f)) << "m=" << m();
  const std::vector<float> k = ToFloat(d_k.Download()), v = ToFloat(d_v.Download());
  size_t written = 0;
  for (float x : k) written += !std::isnan(x);
  EXPECT_EQ(
      written,
      static_cast<size_t>(std::count_if(slots.begin(), slots.end(), [](int x) { return x >= 0; })) * kv_size);
  for (int t = 0; t < m(); ++t) {
    if (slots[t] < 0) continue;
    const size_t cache = static_cast<size_t>(slots[t]) * kv_size,
                 src = static_cast<size_t>(t) * width + c.q_heads * c.head_dim;
    const auto at = [&](const std::vector<float>& a, size_t offset) {
      return std::vector<float>(a.begin() + offset, a.begin() + offset + kv_size);
    };
    EXPECT_TRUE(AllClose(at(k, cache), at(want, src), 2e-2f, 2e-2f)) << "K of row " << t;
    EXPECT_TRUE(AllClose(at(v, cache), at(unrotated, src + kv_size), 2e-2f, 2e-2f)) << "V of row " << t;
  }
}

TEST_P(DecodeGemvTest, NormSwiGluMatchesUnfused) {
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
  NormSwiGluGemv({d_res.get(), d_norm.get(), kEps}, d_w.get(), d_act.get(), m(), c.intermediate, c.hidden,
                 nullptr);
  const std::vector<float> gate_up =
      LinearRef(NormRef(residual, norm_w, m(), c.hidden), w, nullptr, m(), 2 * c.intermediate, c.hidden);
  std::vector<float> want(static_cast<size_t>(m()) * c.intermediate);
  reference::SiluMul(gate_up.data(), want.data(), m(), c.intermediate);
  EXPECT_TRUE(AllClose(ToFloat(d_act.Download()), want, 2e-2f, 2e-2f)) << "m=" << m();
}

TEST_P(DecodeGemvTest, ResidualAddMatchesUnfused) {
  DOZE_SKIP_WITHOUT_GPU();
  const DecodeShape& c = s();
  for (const auto& [n, k] :
       {std::pair{c.hidden, c.q_heads * c.head_dim}, std::pair{c.hidden, c.intermediate}}) {
    const std::vector<float> x = RandomBf16(static_cast<size_t>(m()) * k, -1.f, 1.f, rng_);
    const float bound = 1.f / std::sqrt(static_cast<float>(k));
    const std::vector<float> w = RandomBf16(static_cast<size_t>(n) * k, -bound, bound, rng_);
    const std::vector<float> residual = RandomBf16(static_cast<size_t>(m()) * n, -4.f, 4.f, rng_);
    DeviceArray<__nv_bfloat16> d_x(ToBf16(x)), d_w(ToBf16(w)), d_res(ToBf16(residual));
    ResidualGemv(d_x.get(), d_w.get(), d_res.get(), m(), n, k, nullptr);
    const std::vector<float> proj = LinearRef(x, w, nullptr, m(), n, k);
    std::vector<float> want(residual.size());
    for (size_t i = 0; i < want.size(); ++i) want[i] = reference::RoundBf16(residual[i] + proj[i]);
    EXPECT_TRUE(AllClose(ToFloat(d_res.Download()), want, 3e-2f, 1e-2f)) << "m=" << m() << " k=" << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Rows, DecodeGemvTest,
                         ::testing::Combine(::testing::Values(1, 3, 5, 8),
                                            ::testing::Values(DecodeShape{896, 4864, 14, 2, 64},
                                                              DecodeShape{200, 264, 6, 2, 32})));

}  // namespace
}  // namespace doze::kernels

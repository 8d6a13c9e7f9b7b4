// cuBLASLt Linear and the hand-written Gemv against a double-precision CPU product.
#include "kernels/gemm.h"

#include <gtest/gtest.h>

#include <cmath>

#include "kernels/gemv.h"
#include "tests/kernels/kernel_test_util.h"

namespace doze::kernels {
namespace {

using testing::AllClose;
using testing::DeviceArray;
using testing::RandomBf16;
using testing::ToBf16;
using testing::ToFloat;

struct LinearCase {
  int n, k;
  bool bias;
  OutType out_type;
};

// Runs y = x @ w^T (+ b) through `gemv` or cuBLASLt and compares with the reference.
void CheckLinear(GemmContext& ctx, bool gemv, int m, const LinearCase& c) {
  std::mt19937 rng(m * 131 + c.n + c.k);
  const float bound = 1.f / std::sqrt(static_cast<float>(c.k));
  const std::vector<float> x = RandomBf16(static_cast<size_t>(m) * c.k, -1.f, 1.f, rng);
  const std::vector<float> w = RandomBf16(static_cast<size_t>(c.n) * c.k, -bound, bound, rng);
  const std::vector<float> b = RandomBf16(c.n, -0.5f, 0.5f, rng);
  DeviceArray<__nv_bfloat16> d_x(ToBf16(x)), d_w(ToBf16(w)), d_b(ToBf16(b));
  const size_t out_elems = static_cast<size_t>(m) * c.n;
  DeviceArray<__nv_bfloat16> d_y16(out_elems);
  DeviceArray<float> d_y32(out_elems);
  d_y16.Poison();
  d_y32.Poison();
  void* y = c.out_type == OutType::kF32 ? static_cast<void*>(d_y32.get()) : static_cast<void*>(d_y16.get());
  const __nv_bfloat16* bias = c.bias ? d_b.get() : nullptr;
  if (gemv) {
    Gemv(d_x.get(), d_w.get(), bias, y, c.out_type, m, c.n, c.k, nullptr);
  } else {
    ctx.Linear(d_x.get(), d_w.get(), bias, y, c.out_type, m, c.n, c.k, nullptr);
  }
  std::vector<float> want(out_elems);
  reference::Linear(x.data(), w.data(), c.bias ? b.data() : nullptr, want.data(), m, c.n, c.k);
  const std::vector<float> got = c.out_type == OutType::kF32 ? d_y32.Download() : ToFloat(d_y16.Download());
  const float tol = c.out_type == OutType::kF32 ? 1e-3f : 1e-2f;
  EXPECT_TRUE(AllClose(got, want, tol, tol))
      << (gemv ? "gemv" : "cublasLt") << " m=" << m << " n=" << c.n << " k=" << c.k << " bias=" << c.bias;
}

const LinearCase kCases[] = {
    {1152, 896, true, OutType::kBf16},   // Qwen2.5-0.5B QKV
    {896, 4864, false, OutType::kBf16},  // down projection
    {9728, 896, false, OutType::kBf16},  // gate/up
    {4099, 896, false, OutType::kF32},   // a slice of the LM head, odd width
    {40, 72, true, OutType::kBf16},
};

class LinearTest : public ::testing::TestWithParam<int> {};

TEST_P(LinearTest, CublasLtMatchesReference) {
  DOZE_SKIP_WITHOUT_GPU();
  GemmContext ctx;
  for (const LinearCase& c : kCases) CheckLinear(ctx, /*gemv=*/false, GetParam(), c);
}

TEST_P(LinearTest, GemvMatchesReference) {
  DOZE_SKIP_WITHOUT_GPU();
  if (GetParam() > kGemvMaxRows) GTEST_SKIP() << "Gemv takes at most " << kGemvMaxRows << " rows";
  GemmContext ctx;
  for (const LinearCase& c : kCases) CheckLinear(ctx, /*gemv=*/true, GetParam(), c);
}

INSTANTIATE_TEST_SUITE_P(Batch, LinearTest, ::testing::Values(1, 3, 8, 19, 64));

}  // namespace
}  // namespace doze::kernels

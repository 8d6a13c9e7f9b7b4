#include "worker/backend/cpu/cpu_ops.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "tests/worker/backend/all_close.h"
#include "tests/worker/backend/cpu_reference.h"
#include "tests/worker/backend/tiny_model.h"

namespace doze {
namespace {

using testing::ExpectAllClose;
using testing::RandomFloats;

std::vector<double> AsDouble(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

TEST(RmsNormTest, MatchesReference) {
  for (int64_t dim : {1, 7, 37, 896, 901}) {
    const int64_t rows = 5;
    std::vector<float> x = RandomFloats(rows * dim, dim);     // [rows, dim]
    for (int64_t i = 0; i < dim; ++i) x[i] *= 100.0f;         // one row far from unit scale
    const std::vector<float> w = RandomFloats(dim, dim + 1);  // [dim]
    std::vector<float> out(rows * dim);                       // [rows, dim]
    RmsNorm(x.data(), w.data(), rows, dim, 1e-6f, out.data());
    ExpectAllClose(out, testing::RefRmsNorm(AsDouble(x), AsDouble(w), 1e-6), 1e-6, 1e-5,
                   "dim " + std::to_string(dim));
    RmsNorm(x.data(), w.data(), rows, dim, 1e-6f, x.data());
    EXPECT_EQ(x, out) << "in place";
  }
}

TEST(RopeTest, CosSinMatchReferenceAngles) {
  const std::vector<int32_t> positions = {0, 1, 2, 17, 255, 1000, 4095, 32767};
  for (int head_dim : {18, 64}) {
    for (double theta : {10000.0, 1000000.0}) {
      const int half = head_dim / 2;
      std::vector<float> cos(positions.size() * half), sin(positions.size() * half);  // [num_tokens, half]
      RopeCosSin(positions.data(), positions.size(), head_dim, theta, cos.data(), sin.data());
      for (size_t t = 0; t < positions.size(); ++t) {
        // The angle is rounded to fp32 as transformers does, so allow its rounding error at this position.
        const double atol = 1e-6 + positions[t] * 1.5e-7;
        for (int i = 0; i < half; ++i) {
          const double angle = positions[t] / std::pow(theta, 2.0 * i / head_dim);
          ASSERT_NEAR(cos[t * half + i], std::cos(angle), atol) << "position " << positions[t] << " i " << i;
          ASSERT_NEAR(sin[t * half + i], std::sin(angle), atol) << "position " << positions[t] << " i " << i;
        }
      }
    }
  }
}

TEST(RopeTest, RotationMatchesReference) {
  const std::vector<int32_t> positions = {0, 3, 40, 511, 9};
  for (int head_dim : {2, 18, 64}) {
    const int num_heads = 3, half = head_dim / 2;
    const int64_t stride = num_heads * head_dim + 5;  // rows padded: the op must honour the stride
    std::vector<float> x = RandomFloats(positions.size() * stride, head_dim);  // [num_tokens, stride]
    std::vector<double> expected = AsDouble(x);
    std::vector<float> cos(positions.size() * half), sin(positions.size() * half);  // [num_tokens, half]
    RopeCosSin(positions.data(), positions.size(), head_dim, 10000.0, cos.data(), sin.data());
    ApplyRope(x.data(), positions.size(), stride, num_heads, head_dim, cos.data(), sin.data());
    // Rotated in double by the op's own angles: RopeCosSin's accuracy is the test above.
    for (size_t t = 0; t < positions.size(); ++t) {
      for (int h = 0; h < num_heads; ++h) {
        double* head = &expected[t * stride + h * head_dim];
        for (int i = 0; i < half; ++i) {
          const double c = cos[t * half + i], s = sin[t * half + i], x1 = head[i], x2 = head[i + half];
          head[i] = x1 * c - x2 * s;
          head[i + half] = x2 * c + x1 * s;
        }
      }
    }
    ExpectAllClose(x, expected, 1e-7, 1e-6, "head_dim " + std::to_string(head_dim));
  }
}

TEST(SiluMulTest, MatchesReference) {
  for (int64_t n : {1, 9, 4867}) {
    std::vector<float> gate = RandomFloats(n, n), up = RandomFloats(n, n + 1);  // [n]
    for (float& g : gate) g *= 12.0f;  // reach both tails of the sigmoid
    std::vector<double> expected(n);
    for (int64_t i = 0; i < n; ++i)
      expected[i] = gate[i] / (1.0 + std::exp(-static_cast<double>(gate[i]))) * up[i];
    std::vector<float> out(n);  // [n]
    SiluMul(gate.data(), up.data(), n, out.data());
    ExpectAllClose(out, expected, 1e-6, 1e-6, "n " + std::to_string(n));
  }
}

TEST(GatherRowsTest, WidensEachDtype) {
  const int64_t rows = 13, dim = 11;
  const std::vector<int32_t> ids = {12, 0, 5, 5};
  const std::vector<float> values = RandomFloats(rows * dim, 3);
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    std::vector<uint8_t> storage(rows * dim * DTypeSize(dtype));  // [rows, dim] of dtype
    for (int64_t i = 0; i < rows * dim; ++i) testing::StoreAs(dtype, values[i], storage.data(), i);
    const TensorView table{dtype, {rows, dim}, storage.data()};
    const std::vector<double> all = testing::ToDouble(table);
    std::vector<float> out(ids.size() * dim);  // [num_ids, dim]
    GatherRows(table, ids.data(), ids.size(), out.data());
    for (size_t t = 0; t < ids.size(); ++t) {
      for (int64_t i = 0; i < dim; ++i) ASSERT_EQ(out[t * dim + i], all[ids[t] * dim + i]);
    }
  }
}

TEST(AddInPlaceTest, Adds) {
  std::vector<float> x = RandomFloats(19, 1);
  const std::vector<float> y = RandomFloats(19, 2);
  std::vector<float> expected(19);
  for (int i = 0; i < 19; ++i) expected[i] = x[i] + y[i];
  AddInPlace(x.data(), y.data(), 19);
  EXPECT_EQ(x, expected);
}

}  // namespace
}  // namespace doze

#include "worker/backend/cpu/matmul.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "tests/worker/backend/all_close.h"
#include "tests/worker/backend/cpu_reference.h"
#include "tests/worker/backend/tiny_model.h"

namespace doze {
namespace {

using testing::ExpectAllClose;

struct MatmulCase {
  DType dtype;
  int64_t m, n, k;
  bool bias;
};

// Runs one case against the double reference over the same (already rounded) weights.
void CheckMatmul(const MatmulCase& c, ThreadPool* pool) {
  const std::string what = std::string(DTypeSize(c.dtype) == 4 ? "f32" : "16-bit") +
                           " m=" + std::to_string(c.m) + " n=" + std::to_string(c.n) +
                           " k=" + std::to_string(c.k);
  std::vector<uint8_t> storage(c.n * c.k * DTypeSize(c.dtype));  // [n, k] of dtype
  const std::vector<float> values = testing::RandomFloats(c.n * c.k, c.m * 7919 + c.n * 31 + c.k);
  for (int64_t i = 0; i < c.n * c.k; ++i) testing::StoreAs(c.dtype, values[i], storage.data(), i);
  const TensorView view{c.dtype, {c.n, c.k}, storage.data()};
  const std::vector<float> x = testing::RandomFloats(c.m * c.k, c.k);  // [m, k]
  const std::vector<float> bias = testing::RandomFloats(c.n, c.n);     // [n]
  std::vector<float> y(c.m * c.n, NAN);                                // [m, n]
  Matmul(x.data(), c.m, AsWeightMatrix(view), c.bias ? bias.data() : nullptr, y.data(), pool);

  const std::vector<double> bias_ref(bias.begin(), bias.end());
  const std::vector<double> expected = testing::RefMatmul(
      std::vector<double>(x.begin(), x.end()), testing::ToDouble(view), c.bias ? &bias_ref : nullptr, c.n);
  ExpectAllClose(y, expected, 1e-5 * std::sqrt(static_cast<double>(c.k)), 1e-5, what);
}

TEST(MatmulTest, MatchesReferenceAtOddShapes) {
  for (int num_threads : {1, 3}) {
    ThreadPool pool(num_threads);
    for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
      for (int64_t m : {1, 2, 3, 4, 5, 7, 9, 13}) {
        for (int64_t n : {1, 7, 17, 37, 100}) {
          for (int64_t k : {1, 7, 8, 9, 67, 130}) CheckMatmul({dtype, m, n, k, (m + n) % 2 == 0}, &pool);
        }
      }
    }
  }
}

TEST(MatmulTest, MatchesReferenceAtModelLikeShapes) {
  ThreadPool pool(2);
  CheckMatmul({DType::kBF16, 1, 1000, 896, true}, &pool);
  CheckMatmul({DType::kBF16, 6, 896, 4864, false}, &pool);
  CheckMatmul({DType::kBF16, 19, 129, 896, false}, &pool);
}

TEST(MatmulTest, RowsAreIndependentOfTheirBatch) {
  // A decode row must give the same bits whether it runs alone or beside other rows.
  ThreadPool pool(2);
  const int64_t n = 45, k = 83, m = 11;
  std::vector<uint16_t> storage(n * k);  // [n, k] bf16
  const std::vector<float> values = testing::RandomFloats(n * k, 5);
  for (int64_t i = 0; i < n * k; ++i) testing::StoreAs(DType::kBF16, values[i], storage.data(), i);
  const WeightMatrix w{DType::kBF16, storage.data(), n, k};
  const std::vector<float> x = testing::RandomFloats(m * k, 6);  // [m, k]
  std::vector<float> batched(m * n);                             // [m, n]
  Matmul(x.data(), m, w, nullptr, batched.data(), &pool);
  for (int64_t t = 0; t < m; ++t) {
    std::vector<float> alone(n);  // [1, n]
    Matmul(x.data() + t * k, 1, w, nullptr, alone.data(), &pool);
    for (int64_t j = 0; j < n; ++j) ASSERT_EQ(alone[j], batched[t * n + j]) << "row " << t << " col " << j;
  }
}

}  // namespace
}  // namespace doze

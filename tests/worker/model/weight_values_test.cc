// CountNonFinite and CheckWeightsFinite against hand-encoded bit patterns of each dtype.
#include "worker/model/weight_values.h"

#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace doze {
namespace {

using ::testing::HasSubstr;

// A view of `bits` (starting `skip` bytes into a byte buffer, so any alignment) as `dtype` of `shape`.
template <typename Bits>
TensorView ViewOf(const std::vector<Bits>& bits, DType dtype, std::vector<int64_t> shape,
                  std::vector<char>* storage, size_t skip = 0) {
  storage->assign(skip + bits.size() * sizeof(Bits), '\0');
  std::memcpy(storage->data() + skip, bits.data(), bits.size() * sizeof(Bits));
  return TensorView{dtype, std::move(shape), storage->data() + skip};
}

TEST(CountNonFiniteTest, Bf16CountsNaNAndInfinitiesNotTheLargestOrDenormals) {
  // 1.0, NaN, bf16's largest finite, -inf, a denormal, +inf, a NaN with another payload, -0.
  const std::vector<uint16_t> bits = {0x3F80, 0x7FC0, 0x7F7F, 0xFF80, 0x0001, 0x7F80, 0xFFC1, 0x8000};
  std::vector<char> storage;
  for (size_t skip : {0, 1}) {
    const NonFiniteCount found = CountNonFinite(ViewOf(bits, DType::kBF16, {8}, &storage, skip));
    EXPECT_EQ(found.count, 4) << "skip " << skip;
    EXPECT_EQ(found.first, 1) << "skip " << skip;
  }
}

TEST(CountNonFiniteTest, F16AndF32UseTheirOwnExponents) {
  std::vector<char> storage;
  // f16: 65504 (largest finite), +inf, 61440 (finite, its exponent bits those of bf16's 2^120), NaN.
  NonFiniteCount found = CountNonFinite(
      ViewOf(std::vector<uint16_t>{0x7BFF, 0x7C00, 0x7B80, 0x7E00}, DType::kF16, {4}, &storage));
  EXPECT_EQ(found.count, 2);
  EXPECT_EQ(found.first, 1);
  // f32: FLT_MAX, a finite value whose lower half is bf16's NaN pattern, -inf, NaN; 2 bytes off alignment.
  found = CountNonFinite(ViewOf(std::vector<uint32_t>{0x7F7FFFFF, 0x3F807FC0, 0xFF800000, 0x7FC00000},
                                DType::kF32, {2, 2}, &storage, 2));
  EXPECT_EQ(found.count, 2);
  EXPECT_EQ(found.first, 2);
  found = CountNonFinite(ViewOf(std::vector<uint32_t>{0x3F800000}, DType::kF32, {1}, &storage));
  EXPECT_EQ(found.count, 0);
  EXPECT_EQ(found.first, -1);
}

// Two layers of 2 x 3 matrices and 2-vectors, all finite but for what each case plants.
class CheckWeightsFiniteTest : public testing::Test {
 protected:
  CheckWeightsFiniteTest() : storage_(2 + 2 * std::size(kLayerTensors)) {
    size_t next = 0;
    const auto view = [&](std::vector<int64_t> shape) {
      const std::vector<uint16_t> ones(shape.size() == 1 ? 2 : 6, 0x3F80);
      return ViewOf(ones, DType::kBF16, std::move(shape), &storage_[next++]);
    };
    weights_.embed_tokens = view({2, 3});
    weights_.layers.resize(2);
    for (LayerWeights& layer : weights_.layers) {
      for (const LayerTensor& tensor : kLayerTensors) {
        layer.*tensor.member =
            view(tensor.cols == WeightDim::kNone ? std::vector<int64_t>{2} : std::vector<int64_t>{2, 3});
      }
    }
    weights_.norm = view({2});
    weights_.lm_head = weights_.embed_tokens;
  }

  // Sets element `i` of `view` to the bf16 `bits`.
  static void Plant(const TensorView& view, int64_t i, uint16_t bits) {
    std::memcpy(static_cast<char*>(const_cast<void*>(view.data)) + 2 * i, &bits, 2);
  }

  std::vector<std::vector<char>> storage_;
  ModelWeights weights_;
};

TEST_F(CheckWeightsFiniteTest, FiniteWeightsPass) { EXPECT_TRUE(CheckWeightsFinite(weights_, "/m").ok()); }

TEST_F(CheckWeightsFiniteTest, NamesTheFirstTensorWithTheElementAndTheCount) {
  Plant(weights_.layers[1].up_proj, 5, 0x7FC0);
  Plant(weights_.layers[1].up_proj, 1, 0xFF80);
  Plant(weights_.norm, 0, 0x7F80);
  const absl::Status status = CheckWeightsFinite(weights_, "/m");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      status.message(),
      "/m: tensor model.layers.1.mlp.up_proj.weight holds 2 NaN or infinite values (the first at row 0, "
      "column 1): the checkpoint is damaged");
}

TEST_F(CheckWeightsFiniteTest, VectorsAndTheUntiedHeadAreNamed) {
  Plant(weights_.layers[0].k_bias, 1, 0x7FC0);
  EXPECT_THAT(
      CheckWeightsFinite(weights_, "/m").message(),
      HasSubstr("tensor model.layers.0.self_attn.k_proj.bias holds 1 NaN or infinite value (the first "
                "at element 1)"));
  Plant(weights_.layers[0].k_bias, 1, 0x3F80);
  std::vector<char> head_storage;
  weights_.lm_head = ViewOf(std::vector<uint16_t>{0x3F80, 0x3F80, 0x3F80, 0x3F80, 0xFF80, 0x3F80},
                            DType::kBF16, {2, 3}, &head_storage);
  EXPECT_THAT(
      CheckWeightsFinite(weights_, "/m").message(),
      HasSubstr("tensor lm_head.weight holds 1 NaN or infinite value (the first at row 1, column 1)"));
}

}  // namespace
}  // namespace doze

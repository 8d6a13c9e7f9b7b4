#include "worker/model/weight_values.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace doze {
namespace {

// Counts the elements of `data` whose exponent bits (`exponent_mask`) are all set: NaN or infinity. The count
// is one branch-free pass (the compiler vectorizes it: ~1 GB of weights for the CPU backend); the first index
// is looked for only when there is one.
template <typename Bits>
NonFiniteCount CountAllOnesExponent(const void* data, int64_t n, Bits exponent_mask) {
  const auto* bytes = static_cast<const char*>(data);  // [n * sizeof(Bits)], any alignment
  const auto at = [bytes](int64_t i) {
    Bits bits;
    std::memcpy(&bits, bytes + i * sizeof(Bits), sizeof(Bits));
    return bits;
  };
  NonFiniteCount out;
  for (int64_t i = 0; i < n; ++i) out.count += (at(i) & exponent_mask) == exponent_mask;
  for (int64_t i = 0; out.count > 0 && out.first < 0; ++i) {
    if ((at(i) & exponent_mask) == exponent_mask) out.first = i;
  }
  return out;
}

// Where element `index` of `tensor` sits: "element 7" or "row 0, column 7".
std::string ElementPlace(const TensorView& tensor, int64_t index) {
  if (tensor.shape.size() != 2) return absl::StrCat("element ", index);
  return absl::StrCat("row ", index / tensor.shape[1], ", column ", index % tensor.shape[1]);
}

}  // namespace

NonFiniteCount CountNonFinite(const TensorView& tensor) {
  const int64_t n = tensor.num_elements();
  switch (tensor.dtype) {
    case DType::kF32:
      return CountAllOnesExponent<uint32_t>(tensor.data, n, 0x7F800000u);
    case DType::kF16:
      return CountAllOnesExponent<uint16_t>(tensor.data, n, 0x7C00);
    case DType::kBF16:
      return CountAllOnesExponent<uint16_t>(tensor.data, n, 0x7F80);
  }
  return {};
}

absl::Status CheckWeightsFinite(const ModelWeights& weights, std::string_view source) {
  for (const NamedTensor& tensor : NamedWeights(weights)) {
    const NonFiniteCount found = CountNonFinite(*tensor.view);
    if (found.count == 0) continue;
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(source), ": tensor ", tensor.name, " holds ", found.count,
                     " NaN or infinite value", found.count == 1 ? "" : "s", " (the first at ",
                     ElementPlace(*tensor.view, found.first), "): the checkpoint is damaged"));
  }
  return absl::OkStatus();
}

}  // namespace doze

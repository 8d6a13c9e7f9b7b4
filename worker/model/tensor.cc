#include "worker/model/tensor.h"

#include <cstring>

#include "worker/common/half.h"

namespace doze {

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
  }
  return "?";
}

void ToFloat(const TensorView& tensor, int64_t offset, int64_t count, float* out) {
  // memcpy rather than typed loads: a safetensors header of odd length leaves the data unaligned.
  const char* base =
      static_cast<const char*>(tensor.data) + static_cast<size_t>(offset) * DTypeSize(tensor.dtype);
  if (tensor.dtype == DType::kF32) {
    std::memcpy(out, base, static_cast<size_t>(count) * sizeof(float));
    return;
  }
  for (int64_t i = 0; i < count; ++i) {
    uint16_t bits;
    std::memcpy(&bits, base + 2 * i, sizeof(bits));
    out[i] = tensor.dtype == DType::kBF16 ? Bf16ToFloat(bits) : HalfToFloat(bits);
  }
}

}  // namespace doze

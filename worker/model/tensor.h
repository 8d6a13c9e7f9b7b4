// Element types of checkpoint tensors and a non-owning view of one tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace doze {

enum class DType { kF32, kF16, kBF16 };

// Bytes per element.
inline size_t DTypeSize(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

// The safetensors spelling: "F32", "F16", "BF16".
std::string_view DTypeName(DType dtype);

// A tensor that lives elsewhere (an mmap'd checkpoint, a buffer); row-major, contiguous.
struct TensorView {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;

  int64_t num_elements() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  size_t nbytes() const { return static_cast<size_t>(num_elements()) * DTypeSize(dtype); }
};

// Widens `count` elements starting at element `offset` of `tensor` to fp32.
void ToFloat(const TensorView& tensor, int64_t offset, int64_t count, float* out);

}  // namespace doze

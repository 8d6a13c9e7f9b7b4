#include <algorithm>

#include "kernels/cuda_check.h"
#include "kernels/nonfinite.h"

namespace doze::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;
constexpr uint32_t kExponent = 0x7F80;  // a bf16 whose exponent bits are all set is NaN or infinite

__device__ __forceinline__ uint32_t NonFinite(uint32_t bits) { return (bits & kExponent) == kExponent; }

// The eight bf16 of a 16-byte vector that are NaN or infinite.
__device__ __forceinline__ uint32_t NonFiniteIn(uint4 v) {
  return NonFinite(v.x & 0xFFFF) + NonFinite(v.x >> 16) + NonFinite(v.y & 0xFFFF) + NonFinite(v.y >> 16) +
         NonFinite(v.z & 0xFFFF) + NonFinite(v.z >> 16) + NonFinite(v.w & 0xFFFF) + NonFinite(v.w >> 16);
}

// Elements [0, head) one a thread, then [head, head + 8 * vectors) as 16-byte vectors, then the tail one a
// thread; a warp's count added once.
static __global__ void CountNonFiniteKernel(const uint16_t* __restrict__ x,  // [n]
                                            int64_t n, int64_t head, int64_t vectors,
                                            unsigned long long* __restrict__ count) {  // [1]
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t thread = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  uint32_t found = 0;
  for (int64_t i = thread; i < head; i += stride) found += NonFinite(x[i]);
  const auto* vec = reinterpret_cast<const uint4*>(x + head);  // [vectors]
  for (int64_t i = thread; i < vectors; i += stride) found += NonFiniteIn(__ldg(vec + i));
  for (int64_t i = head + 8 * vectors + thread; i < n; i += stride) found += NonFinite(x[i]);
  for (int offset = 16; offset > 0; offset /= 2) found += __shfl_xor_sync(0xffffffffu, found, offset);
  if (threadIdx.x % 32 == 0 && found != 0) atomicAdd(count, found);
}

}  // namespace

void CountNonFinite(const __nv_bfloat16* x, int64_t n, unsigned long long* count, cudaStream_t stream) {
  if (n <= 0) return;
  const auto* bits = reinterpret_cast<const uint16_t*>(x);
  // Elements before the first 16-byte boundary (x is at least 2-byte aligned).
  const int64_t misaligned = (reinterpret_cast<uintptr_t>(bits) % 16) / 2;
  const int64_t head = misaligned == 0 ? 0 : std::min<int64_t>(n, 8 - misaligned);
  const int64_t vectors = (n - head) / 8;
  const int64_t work = std::max<int64_t>(vectors, n - 8 * vectors);
  const int blocks = static_cast<int>(std::clamp<int64_t>((work + kThreads - 1) / kThreads, 1, kMaxBlocks));
  CountNonFiniteKernel<<<blocks, kThreads, 0, stream>>>(bits, n, head, vectors, count);
  CUDA_CHECK_LAUNCH();
}

}  // namespace doze::kernels

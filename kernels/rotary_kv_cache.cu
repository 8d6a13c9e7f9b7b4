#include <algorithm>

#include "kernels/cuda_check.h"
#include "kernels/pdl.cuh"
#include "kernels/rotary_angle.cuh"
#include "kernels/rotary_kv_cache.h"

namespace doze::kernels {
namespace {

constexpr int kThreads = 256;

// One block per token. Thread t < (num_q_heads + num_kv_heads) * half rotates one (x[i], x[i + half]) pair;
// the threads after them copy V. K is written to the cache after its rotation.
static __global__ void RotaryKvKernel(
    __nv_bfloat16* __restrict__ qkv,           // [num_tokens, row_width]
    const int32_t* __restrict__ positions,     // [num_tokens]
    const int32_t* __restrict__ slot_mapping,  // [num_tokens]
    const float* __restrict__ inv_freq,        // [head_dim / 2]
    __nv_bfloat16* __restrict__ k_cache,       // [num_blocks, block_size, kv_heads, dim]
    __nv_bfloat16* __restrict__ v_cache,       // [num_blocks, block_size, kv_heads, dim]
    RotaryShape shape) {
  const int token = blockIdx.x;
  GridDependencyWait();  // qkv is the previous kernel's output; the caches are read by earlier kernels
  LaunchDependents();
  const int head_dim = shape.head_dim;
  const int half = head_dim / 2;
  const int kv_size = shape.num_kv_heads * head_dim;
  const int q_size = shape.num_q_heads * head_dim;
  __nv_bfloat16* row = qkv + static_cast<int64_t>(token) * (q_size + 2 * kv_size);
  const int64_t slot = slot_mapping[token];
  // The cache row of this token: [kv_heads, head_dim] at slot (blocks are contiguous slots).
  const int64_t cache_base = slot * kv_size;
  const float position = static_cast<float>(positions[token]);
  const int num_pairs = (shape.num_q_heads + shape.num_kv_heads) * half;
  for (int t = threadIdx.x; t < num_pairs + kv_size; t += blockDim.x) {
    if (t >= num_pairs) {
      const int c = t - num_pairs;
      if (slot >= 0) v_cache[cache_base + c] = row[q_size + kv_size + c];
      continue;
    }
    const int head = t / half;
    const int i = t % half;
    const float2 cos_sin = RotaryPairCosSin(position, inv_freq[i]);
    const float c = cos_sin.x, s = cos_sin.y;
    __nv_bfloat16* x = row + head * head_dim;
    const float x1 = __bfloat162float(x[i]);
    const float x2 = __bfloat162float(x[i + half]);
    const __nv_bfloat16 y1 = __float2bfloat16(x1 * c - x2 * s);
    const __nv_bfloat16 y2 = __float2bfloat16(x2 * c + x1 * s);
    x[i] = y1;
    x[i + half] = y2;
    const int k_head = head - shape.num_q_heads;
    if (k_head >= 0 && slot >= 0) {
      k_cache[cache_base + k_head * head_dim + i] = y1;
      k_cache[cache_base + k_head * head_dim + i + half] = y2;
    }
  }
}

// Grid (num_tokens), one thread per rotary pair.
static __global__ void RotaryTableKernel(const int32_t* __restrict__ positions,  // [num_tokens]
                                         const float* __restrict__ inv_freq,     // [half]
                                         float2* __restrict__ cos_sin,           // [num_tokens, half]
                                         int half) {
  GridDependencyWait();  // the table may still be read by the kernel before
  LaunchDependents();
  WriteRotaryRow(static_cast<float>(positions[blockIdx.x]), inv_freq,
                 cos_sin + static_cast<int64_t>(blockIdx.x) * half, half);
}

}  // namespace

void RotaryTable(const int32_t* positions, const float* inv_freq, float2* cos_sin, int num_tokens,
                 int head_dim, cudaStream_t stream) {
  if (num_tokens == 0) return;
  if (head_dim % 2 != 0) CudaFail("RotaryTable", "head_dim must be even", __FILE__, __LINE__);
  const int half = head_dim / 2;
  LaunchWithPdl(RotaryTableKernel, dim3(num_tokens), dim3(std::min(half, 1024)), 0, stream, positions,
                inv_freq, cos_sin, half);
}

void RotaryAndCacheWrite(__nv_bfloat16* qkv, const int32_t* positions, const int32_t* slot_mapping,
                         const float* inv_freq, __nv_bfloat16* k_cache, __nv_bfloat16* v_cache,
                         const RotaryShape& shape, cudaStream_t stream) {
  if (shape.num_tokens == 0) return;
  if (shape.head_dim % 2 != 0) CudaFail("RotaryAndCacheWrite", "head_dim must be even", __FILE__, __LINE__);
  LaunchWithPdl(RotaryKvKernel, dim3(shape.num_tokens), dim3(kThreads), 0, stream, qkv, positions,
                slot_mapping, inv_freq, k_cache, v_cache, shape);
}

}  // namespace doze::kernels

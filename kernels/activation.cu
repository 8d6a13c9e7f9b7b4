#include <algorithm>

#include "kernels/activation.h"
#include "kernels/cuda_check.h"
#include "kernels/pdl.cuh"
#include "kernels/vec.cuh"

namespace doze::kernels {
namespace {

constexpr int kThreads = 256;

static __global__ void SiluMulKernel(
    const __nv_bfloat16* __restrict__ gate_up,  // [num_rows, 2 * intermediate]
    __nv_bfloat16* __restrict__ out,            // [num_rows, intermediate]
    int num_rows, int intermediate) {
  GridDependencyWait();  // gate_up is the previous kernel's output
  LaunchDependents();
  const int vecs_per_row = intermediate / 8;
  const int64_t total = static_cast<int64_t>(num_rows) * vecs_per_row;
  for (int64_t v = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; v < total;
       v += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = v / vecs_per_row;
    const int col = static_cast<int>(v % vecs_per_row) * 8;
    float g[8], u[8];
    LoadBf16x8(gate_up + row * 2 * intermediate + col, g);
    LoadBf16x8(gate_up + row * 2 * intermediate + intermediate + col, u);
#pragma unroll
    for (int j = 0; j < 8; ++j) g[j] = g[j] / (1.f + expf(-g[j])) * u[j];
    StoreBf16x8(out + row * intermediate + col, g);
  }
}

}  // namespace

void SiluMul(const __nv_bfloat16* gate_up, __nv_bfloat16* out, int num_rows, int intermediate,
             cudaStream_t stream) {
  if (num_rows == 0) return;
  if (intermediate % 8 != 0) CudaFail("SiluMul", "intermediate must be a multiple of 8", __FILE__, __LINE__);
  const int64_t total = static_cast<int64_t>(num_rows) * (intermediate / 8);
  const int blocks = static_cast<int>(std::min<int64_t>((total + kThreads - 1) / kThreads, 132 * 16));
  LaunchWithPdl(SiluMulKernel, dim3(blocks), dim3(kThreads), 0, stream, gate_up, out, num_rows, intermediate);
}

}  // namespace doze::kernels

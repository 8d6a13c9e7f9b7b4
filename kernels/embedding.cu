#include "kernels/cuda_check.h"
#include "kernels/embedding.h"
#include "kernels/vec.cuh"

namespace doze::kernels {
namespace {

constexpr int kThreads = 128;

static __global__ void GatherRowsKernel(const int32_t* __restrict__ indices,      // [num_rows]
                                        const __nv_bfloat16* __restrict__ table,  // [table_rows, width]
                                        __nv_bfloat16* __restrict__ out,          // [num_rows, width]
                                        int width) {
  const int row = blockIdx.x;
  const int64_t src_row = indices[row];
  const int num_vecs = width / 8;
  Bf16x8* dst = reinterpret_cast<Bf16x8*>(out + static_cast<int64_t>(row) * width);
  if (src_row < 0) {
    Bf16x8 zero{};
    for (int v = threadIdx.x; v < num_vecs; v += blockDim.x) dst[v] = zero;
    return;
  }
  const Bf16x8* src = reinterpret_cast<const Bf16x8*>(table + src_row * width);
  for (int v = threadIdx.x; v < num_vecs; v += blockDim.x) dst[v] = src[v];
}

}  // namespace

void GatherRows(const int32_t* indices, const __nv_bfloat16* table, __nv_bfloat16* out, int num_rows,
                int width, cudaStream_t stream) {
  if (num_rows == 0) return;
  if (width % 8 != 0) CudaFail("GatherRows", "width must be a multiple of 8", __FILE__, __LINE__);
  GatherRowsKernel<<<num_rows, kThreads, 0, stream>>>(indices, table, out, width);
  CUDA_CHECK_LAUNCH();
}

}  // namespace doze::kernels

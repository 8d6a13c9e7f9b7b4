#include "kernels/cuda_check.h"
#include "kernels/embedding.h"
#include "kernels/gather_row.cuh"

namespace doze::kernels {
namespace {

constexpr int kThreads = 128;

static __global__ void GatherRowsKernel(const int32_t* __restrict__ indices,      // [num_rows]
                                        const __nv_bfloat16* __restrict__ table,  // [table_rows, width]
                                        __nv_bfloat16* __restrict__ out,          // [num_rows, width]
                                        int width) {
  const int row = blockIdx.x;
  CopyTableRow(table, indices[row], out + static_cast<int64_t>(row) * width, width);
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

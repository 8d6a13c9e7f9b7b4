#include "kernels/cuda_check.h"
#include "kernels/pdl.cuh"
#include "kernels/rms_norm.cuh"
#include "kernels/rms_norm.h"
#include "kernels/vec.cuh"

namespace doze::kernels {
namespace {

constexpr int kThreads = kAddRmsNormThreads;

// One block per row. With kAdd the sum residual + x is rounded to bf16 and written back before the norm reads
// it, so the norm sees exactly the residual stream the next layer will.
template <bool kAdd>
static __global__ void RmsNormKernel(__nv_bfloat16* __restrict__ residual,      // [num_rows, hidden]
                                     const __nv_bfloat16* __restrict__ x,       // [num_rows, hidden]
                                     const __nv_bfloat16* __restrict__ weight,  // [hidden]
                                     __nv_bfloat16* __restrict__ out,           // [num_rows, hidden]
                                     int hidden, float eps) {
  __shared__ float scratch[kThreads / 32];
  GridDependencyWait();  // x and the residual are the previous kernels' output
  LaunchDependents();
  const int64_t base = static_cast<int64_t>(blockIdx.x) * hidden;
  const __nv_bfloat16* src = kAdd ? residual + base : x + base;
  const float inv_rms = RowInvRms(
      [&](int i, float(&v)[8]) {
        LoadBf16x8(src + i, v);
        if constexpr (kAdd) {
          float d[8];
          LoadBf16x8(x + base + i, d);
#pragma unroll
          for (int j = 0; j < 8; ++j) v[j] = __bfloat162float(__float2bfloat16(v[j] + d[j]));
          StoreBf16x8(residual + base + i, v);
        }
      },
      hidden, kThreads, eps, scratch);
  WriteNormedRow(src, weight, out + base, hidden, kThreads, inv_rms);
}

void CheckHidden(int hidden) {
  if (hidden % 8 != 0) CudaFail("RmsNorm", "hidden must be a multiple of 8", __FILE__, __LINE__);
}

}  // namespace

void RmsNorm(const __nv_bfloat16* x, const __nv_bfloat16* weight, __nv_bfloat16* out, int num_rows,
             int hidden, float eps, cudaStream_t stream) {
  if (num_rows == 0) return;
  CheckHidden(hidden);
  LaunchWithPdl(RmsNormKernel<false>, dim3(num_rows), dim3(kThreads), 0, stream, nullptr, x, weight, out,
                hidden, eps);
}

void AddRmsNorm(__nv_bfloat16* residual, const __nv_bfloat16* x, const __nv_bfloat16* weight,
                __nv_bfloat16* out, int num_rows, int hidden, float eps, cudaStream_t stream) {
  if (num_rows == 0) return;
  CheckHidden(hidden);
  LaunchWithPdl(RmsNormKernel<true>, dim3(num_rows), dim3(kThreads), 0, stream, residual, x, weight, out,
                hidden, eps);
}

}  // namespace doze::kernels

#include "kernels/cuda_check.h"
#include "kernels/pdl.cuh"
#include "kernels/rms_norm.cuh"
#include "kernels/rms_norm.h"
#include "kernels/vec.cuh"

namespace doze::kernels {
namespace {

constexpr int kThreads = kAddRmsNormThreads;

// One block per row, the row held in registers between the passes (kernels/rms_norm.cuh). With kAdd the sum
// residual + x is rounded to bf16 and written back, so the norm sees exactly the residual stream the next
// layer will.
template <bool kAdd, int kVecs>
static __global__ void RmsNormKernel(__nv_bfloat16* __restrict__ residual,      // [num_rows, hidden]
                                     const __nv_bfloat16* __restrict__ x,       // [num_rows, hidden]
                                     const __nv_bfloat16* __restrict__ weight,  // [hidden]
                                     __nv_bfloat16* __restrict__ out,           // [num_rows, hidden]
                                     int hidden, float eps) {
  __shared__ float scratch[kThreads / 32];
  GridDependencyWait();  // x and the residual are the previous kernels' output
  LaunchDependents();
  const int64_t base = static_cast<int64_t>(blockIdx.x) * hidden;
  HeldRow<kVecs> row;
  LoadHeldRow(row, kAdd ? residual + base : x + base, weight, hidden, kThreads);
  if constexpr (kAdd) {
    ForEachHeldVector<kVecs>(hidden, kThreads, [&](int j, int i) {
      float d[8];
      LoadBf16x8(x + base + i, d);
#pragma unroll
      for (int q = 0; q < 8; ++q) row.v[j][q] = __bfloat162float(__float2bfloat16(row.v[j][q] + d[q]));
      StoreBf16x8(residual + base + i, row.v[j]);
    });
  }
  WriteHeldRow(row, out + base, hidden, kThreads, HeldRowInvRms(row, hidden, kThreads, eps, scratch));
}

template <bool kAdd>
void Launch(__nv_bfloat16* residual, const __nv_bfloat16* x, const __nv_bfloat16* weight, __nv_bfloat16* out,
            int num_rows, int hidden, float eps, cudaStream_t stream) {
  if (num_rows == 0) return;
  CheckNormHidden("RmsNorm", hidden);
  WithNormVecs(hidden, [&](auto vecs) {
    LaunchWithPdl(RmsNormKernel<kAdd, decltype(vecs)::value>, dim3(num_rows), dim3(kThreads), 0, stream,
                  residual, x, weight, out, hidden, eps);
  });
}

}  // namespace

void CheckNormHidden(const char* op, int hidden) {
  if (hidden % 8 != 0 || hidden > kMaxNormHidden)
    CudaFail(op, "hidden must be a multiple of 8, at most kMaxNormHidden", __FILE__, __LINE__);
}

void RmsNorm(const __nv_bfloat16* x, const __nv_bfloat16* weight, __nv_bfloat16* out, int num_rows,
             int hidden, float eps, cudaStream_t stream) {
  Launch<false>(nullptr, x, weight, out, num_rows, hidden, eps, stream);
}

void AddRmsNorm(__nv_bfloat16* residual, const __nv_bfloat16* x, const __nv_bfloat16* weight,
                __nv_bfloat16* out, int num_rows, int hidden, float eps, cudaStream_t stream) {
  Launch<true>(residual, x, weight, out, num_rows, hidden, eps, stream);
}

}  // namespace doze::kernels

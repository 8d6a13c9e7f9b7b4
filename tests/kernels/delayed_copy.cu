#include "kernels/pdl.cuh"
#include "tests/kernels/delayed_copy.h"

namespace doze::kernels::testing {
namespace {

__global__ void DelayedCopyKernel(const __nv_bfloat16* src_a, __nv_bfloat16* dst_a,
                                  const __nv_bfloat16* src_b, __nv_bfloat16* dst_b, size_t n, int delay_us) {
  LaunchDependents();
  for (int i = 0; i < delay_us; ++i) __nanosleep(1000);
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    dst_a[i] = src_a[i];
    dst_b[i] = src_b[i];
  }
}

}  // namespace

void LaunchDelayedCopy(const __nv_bfloat16* src_a, __nv_bfloat16* dst_a, const __nv_bfloat16* src_b,
                       __nv_bfloat16* dst_b, size_t n, int delay_us, cudaStream_t stream) {
  // Few blocks, so that the dependent kernel's blocks find room beside them.
  LaunchWithPdl(DelayedCopyKernel, dim3(8), dim3(256), 0, stream, src_a, dst_a, src_b, dst_b, n, delay_us);
}

}  // namespace doze::kernels::testing

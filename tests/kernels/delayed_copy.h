// A kernel for testing what a kernel launched with programmatic dependent launch reads before its
// GridDependencyWait: it lets its dependents start at once, then writes late.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace doze::kernels::testing {

// Launched with programmatic dependent launch: lets the next kernel on the stream start, waits about
// `delay_us` microseconds, then copies src to dst (`n` elements each, two arrays). A dependent kernel that
// reads dst before its GridDependencyWait sees dst's old contents.
void LaunchDelayedCopy(const __nv_bfloat16* src_a,  // [n]
                       __nv_bfloat16* dst_a,        // [n]
                       const __nv_bfloat16* src_b,  // [n]
                       __nv_bfloat16* dst_b,        // [n]
                       size_t n, int delay_us, cudaStream_t stream);

}  // namespace doze::kernels::testing

// Gate/up with SwiGLU for a few dozen decode rows on the tensor memory accelerator: each block owns 40
// gate/up pairs (80 weight rows, wgmma's B operand) and every row of x (the A operand, 64 rows), and its
// 64-wide k-tiles of both arrive by one thread's box copies into a ring of shared-memory stages. Where the
// cp.async kernel of kernels/decode_mma.h puts 128 weight rows on each of 76 multiprocessors at
// Qwen2.5-0.5B's shape, this puts 80 on each of 122. sm_90a builds only (wgmma).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace doze::kernels {

// Whether DecodeTmaSwiGlu can run: a build with wgmma (sm_90a) and pointers and sizes that tensor maps can
// describe.
bool DecodeTmaSwiGluFits(const __nv_bfloat16* x, const __nv_bfloat16* w, int hidden);

// Whether DecodeMmaSwiGlu hands a call to DecodeTmaSwiGlu: it fits, and m is within
// [DOZE_TMA_SWIGLU_MIN_ROWS (default 33), 64].
bool UseDecodeTmaSwiGlu(const __nv_bfloat16* x, const __nv_bfloat16* w, int m, int hidden);

// act = silu(g) * u with [g, u] = x @ w^T, g and u rounded to bf16 first (DecodeMmaSwiGlu's values).
void DecodeTmaSwiGlu(const __nv_bfloat16* x,  // [m, hidden]
                     const __nv_bfloat16* w,  // [2 * intermediate, hidden]: gate rows, then up rows
                     __nv_bfloat16* act,      // [m, intermediate]
                     int m, int intermediate, int hidden, cudaStream_t stream);

}  // namespace doze::kernels

// Decode projections for a few dozen rows (kDecodeMmaMaxRows) on bf16 tensor cores, with the epilogues of
// kernels/decode_epilogue.cuh: y = x @ w^T stored as bf16, SwiGLU of the gate/up projection, or the QKV
// projection's bias, rotary and KV-cache write. Two kernels: for one or two rows, each warp streams 16 (or
// two matched sets of 16) weight rows of one k-range straight into mma.sync fragments, reused for every row
// of x (staged once per block in shared memory); from 3 rows, a block's 128 weight rows and every row of x
// stream through a ring of shared-memory stages in 64-wide k-tiles (cp.async), so that more weight bytes are
// in flight than registers could hold, multiplied with wgmma (sm_90a; ldmatrix and mma.sync elsewhere).
// When the rows are too few to fill the GPU, their k-ranges are spread over blocks: up to 8 such blocks are
// one cluster and add their sums through distributed shared memory, more store fp32 partial sums that a
// second kernel adds; either way in a fixed order (the result does not depend on timing), then the epilogue
// runs. Launched with programmatic dependent launch: the first weights load before the wait on the previous
// kernel.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/rotary_kv_cache.h"

namespace doze::kernels {

// Most rows one call takes.
inline constexpr int kDecodeMmaMaxRows = 64;

// Whether a projection of n outputs over k inputs has the sizes the kernels need: n and k multiples of 32 (so
// that a paired epilogue's n / 2 splits into 16-row tiles; DecodeMmaQkvRotary also needs head_dim a power of
// two, at least 32).
bool DecodeMmaSupports(int n, int k);

// Scratch for the split sums.
struct DecodeMmaWorkspace {
  void* data = nullptr;  // [bytes]
  size_t bytes = 0;
};

// Bytes of workspace a call with m rows, n outputs and k inputs needs (0 when it does not split k).
size_t DecodeMmaWorkspaceBytes(int m, int n, int k);

// y = bf16(x @ w^T).
void DecodeMmaStore(const __nv_bfloat16* x,  // [m, k]
                    const __nv_bfloat16* w,  // [n, k]
                    __nv_bfloat16* y,        // [m, n]
                    int m, int n, int k, const DecodeMmaWorkspace& workspace, cudaStream_t stream);

// The norm that follows a residual projection: residual += y (rounded to bf16), then
// normed = RmsNorm(residual) * weight, as kernels/rms_norm.h's AddRmsNorm.
struct ResidualNorm {
  __nv_bfloat16* residual;      // [m, n], updated in place
  const __nv_bfloat16* weight;  // [n]
  __nv_bfloat16* normed;        // [m, n]
  float eps;
};

// y = bf16(x @ w^T), then AddRmsNorm(norm.residual, y, norm.weight, norm.normed): the same values. Where k
// splits (into at most 16, whose sums fit the kernel's shared memory), the splits store partial sums instead
// of adding them in a cluster or a reduce kernel, and one kernel adds them, the residual and the norm (y is
// not written): a cluster's blocks must start together, and on the H100 they waited for room beside the
// decode attention before o_proj (kernels/PERF_NOTES.md, twelfth and thirteenth sessions).
void DecodeMmaResidualNorm(const __nv_bfloat16* x,  // [m, k]
                           const __nv_bfloat16* w,  // [n, k]
                           __nv_bfloat16* y,        // [m, n], scratch
                           int m, int n, int k, const ResidualNorm& norm, const DecodeMmaWorkspace& workspace,
                           cudaStream_t stream);

// act = silu(g) * u with [g, u] = x @ w^T, g and u rounded to bf16 first. From 33 rows (sm_90a builds) the
// box-copy kernel of kernels/decode_tma_swiglu.h runs it.
void DecodeMmaSwiGlu(const __nv_bfloat16* x,  // [m, hidden]
                     const __nv_bfloat16* w,  // [2 * intermediate, hidden]: gate rows, then up rows
                     __nv_bfloat16* act,      // [m, intermediate]
                     int m, int intermediate, int hidden, const DecodeMmaWorkspace& workspace,
                     cudaStream_t stream);

// qkv = x @ w^T + bias, then RotaryAndCacheWrite's rotation and K/V cache writes; shape.num_tokens is m.
void DecodeMmaQkvRotary(
    const __nv_bfloat16* x,     // [m, hidden]
    const __nv_bfloat16* w,     // [(num_q_heads + 2 * num_kv_heads) * head_dim, hidden]
    const __nv_bfloat16* bias,  // [(num_q_heads + 2 * num_kv_heads) * head_dim] or nullptr
    const RotaryCacheOutput& out, const RotaryShape& shape, int hidden, const DecodeMmaWorkspace& workspace,
    cudaStream_t stream);

}  // namespace doze::kernels

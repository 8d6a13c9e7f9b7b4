// The feed-forward half of a decode layer for one row in one kernel: the post-attention RMSNorm, gate/up,
// SwiGLU and down_proj. A block serves groups of 16 consecutive intermediate indices, one a warp as
// NormSwiGluGemv's warps do; once the group's 16 activations are in shared memory, each thread multiplies 8
// of them by its rows' 16-byte piece of the group's columns of down_proj (a group is one 32-byte sector of
// each row), so down's bytes stream beside gate/up's and no kernel waits between them. The group's 16 up rows
// (contiguous) come by one bulk copy into shared memory (except in a block's last round), the rest through
// registers. Each row's share,
// added over the block's groups in order, goes into `pending` as fixed-point integers
// (kernels/pending_residual.h: the total does not depend on the order the blocks' additions land in). The
// kernels after it add the pending sums to the residual stream (NormQkvRotaryGemv through NormInput::pending,
// MergeResidualGemv, which zeroes them). The activations are rounded to bf16 as NormSwiGluGemv stores them;
// down's sums differ from ResidualGemv's by the order of their fp32 additions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/decode_gemv.h"

namespace doze::kernels {

// The largest hidden size FfnGemv takes (a row is one 16-byte vector a lane four times over).
constexpr int kFfnGemvMaxHidden = 1024;

// Whether FfnGemv takes m rows of these sizes: one row, hidden a multiple of 8 up to kFfnGemvMaxHidden,
// intermediate a multiple of 16.
bool FfnGemvTakes(int m, int hidden, int intermediate);

// pending += (silu(g) * u) @ down^T, with [g, u] = RmsNorm(in.residual) @ gate_up^T, for one row. `pending`
// keeps what it held (zero, unless the caller means to add). in.pending must be null (the residual is
// complete). Launched with programmatic dependent launch: the weights are read before the wait, the residual
// after it.
void FfnGemv(const NormInput& in,
             const __nv_bfloat16* gate_up,  // [2 * intermediate, hidden]: gate rows, then up rows
             const __nv_bfloat16* down,     // [hidden, intermediate]
             int64_t* pending,              // [hidden]
             int hidden, int intermediate, cudaStream_t stream);

}  // namespace doze::kernels

// SwiGLU: silu(gate) * up over the output of the fused gate/up projection.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace doze::kernels {

// out[r, i] = silu(gate_up[r, i]) * gate_up[r, intermediate + i], in fp32, rounded once.
// `intermediate` must be a multiple of 8.
void SiluMul(const __nv_bfloat16* gate_up,  // [num_rows, 2 * intermediate]: gate columns, then up columns
             __nv_bfloat16* out,            // [num_rows, intermediate]
             int num_rows, int intermediate, cudaStream_t stream);

}  // namespace doze::kernels

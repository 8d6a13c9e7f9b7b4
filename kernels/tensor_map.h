// Tensor maps for the tensor memory accelerator (kernels/tma.cuh), encoded on the host through the driver's
// entry point (no link against the driver library).
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>

#include <cstdint>

namespace doze::kernels {

// Whether a row-major bf16 matrix can be described: 16-byte aligned base and row stride.
bool TensorMapFits(const __nv_bfloat16* base, int64_t row_stride);

// A row-major bf16 matrix of `rows` x `cols` (`row_stride` elements between rows), copied in boxes of
// box_rows x 64 columns (128-byte rows) in the 128-byte swizzle that wgmma's descriptors describe
// (kernels/wgmma.cuh). Ends the process when the driver refuses it.
CUtensorMap SwizzledBf16Map(const __nv_bfloat16* base,  // [rows, row_stride]
                            int64_t rows, int64_t cols, int64_t row_stride, int box_rows);

}  // namespace doze::kernels

// Tensor-core products over 64-wide k-tiles staged in shared memory, shared by the decode projections
// (kernels/decode_mma.cu) and the greedy LM head (kernels/lm_head_argmax.cu): a tile row is 128 bytes (64
// bf16 values of k) in eight 16-byte pieces, XOR-swizzled by the row (the layout wgmma's 128-byte swizzle
// describes, kernels/wgmma.cuh); a block's warps each own 16 weight rows (an m16n8k16 tile's A operand).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/env_knob.h"
#include "kernels/wgmma.cuh"

namespace doze::kernels {

// Whether the kernels that can multiply with warpgroup instructions do (sm_90a builds; elsewhere the flag is
// ignored and mma.sync runs); DOZE_DECODE_MMA_WGMMA=0 keeps mma.sync (measurements). Host code.
inline bool UseWgmma() {
  static const bool wgmma = EnvFlag("DOZE_DECODE_MMA_WGMMA");
  return wgmma;
}

constexpr int kPipeK = 64;  // k values per tile: a 128-byte row, eight 16-byte pieces

// d += A[16 x 16] B[16 x 8]; a0..a3 hold A[g][2c..], A[g + 8][2c..], A[g][2c + 8..], A[g + 8][2c + 8..] and
// b0, b1 B[2c..][g], B[2c + 8..][g] (lane = 4g + c).
__device__ __forceinline__ void Mma(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                    uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Byte offset of piece `c` of tile row `row`: pieces XOR-swizzled by the row, so that the eight rows an
// ldmatrix phase reads fall in eight different bank groups.
__device__ __forceinline__ uint32_t SwizzledOffset(int row, int c) {
  return row * 128 + ((c ^ (row & 7)) << 4);
}

// Lanes 0-7 address matrix 0's rows, lanes 8-15 matrix 1's (the other lanes' addresses are not used).
__device__ __forceinline__ void LdMatrixX2(uint32_t address, uint32_t& r0, uint32_t& r1) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r0), "=r"(r1)
               : "r"(address));
}

__device__ __forceinline__ void LdMatrixX4(uint32_t address, uint32_t& r0, uint32_t& r1, uint32_t& r2,
                                           uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(address));
}

// The mma tile (16 weight rows) of the calling warp.
__device__ __forceinline__ int PipeTile() { return threadIdx.x >> 5; }

// acc[j] += the warp's 16 weight rows x rows 8j + [0, 8) of x over one staged k-tile.
template <int kNTiles>
__device__ __forceinline__ void MmaTile(uint32_t w_stage, uint32_t x_stage, float (&acc)[kNTiles][4]) {
  const int lane = threadIdx.x & 31, warp = PipeTile();
#pragma unroll
  for (int kk = 0; kk < kPipeK / 16; ++kk) {
    uint32_t a[4];
    const int a_row = 16 * warp + (lane & 15);
    LdMatrixX4(w_stage + SwizzledOffset(a_row, 2 * kk + (lane >> 4)), a[0], a[1], a[2], a[3]);
    if constexpr (kNTiles == 1) {
      uint32_t b[2];
      LdMatrixX2(x_stage + SwizzledOffset(lane & 7, 2 * kk + ((lane >> 3) & 1)), b[0], b[1]);
      Mma(acc[0], a[0], a[1], a[2], a[3], b[0], b[1]);
    }
#pragma unroll
    for (int jp = 0; jp < kNTiles / 2; ++jp) {
      uint32_t b[4];
      const int x_row = 8 * (2 * jp + (lane >> 4)) + (lane & 7);
      LdMatrixX4(x_stage + SwizzledOffset(x_row, 2 * kk + ((lane >> 3) & 1)), b[0], b[1], b[2], b[3]);
      Mma(acc[2 * jp], a[0], a[1], a[2], a[3], b[0], b[1]);
      Mma(acc[2 * jp + 1], a[0], a[1], a[2], a[3], b[2], b[3]);
    }
  }
}

#if defined(DOZE_HAVE_WGMMA)
// The same products as MmaTile, by each warpgroup at once: its four warps are four 16-row tiles, and the
// wgmma read both operands from shared memory (no ldmatrix, x read once for the four). `w_desc` describes the
// warpgroup's 64 weight rows of the k-tile, `x_desc` x's rows of it (SwizzledTileDescriptor).
template <int kNTiles>
__device__ __forceinline__ void WgmmaTile(uint64_t w_desc, uint64_t x_desc, float (&acc)[kNTiles][4]) {
  WgmmaFence();
#pragma unroll
  for (int kk = 0; kk < kPipeK / 16; ++kk)  // 32 bytes of k a step: 2 of the descriptors' 16-byte units
    Wgmma<kNTiles>(acc, w_desc + 2 * kk, x_desc + 2 * kk);
  WgmmaCommitAndWait();
}
#endif

}  // namespace doze::kernels

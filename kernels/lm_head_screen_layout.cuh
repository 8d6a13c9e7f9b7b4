// How the screen of an [n, k] LM head (kernels/lm_head_screen.h) lies in memory, shared by the kernel that
// builds it (lm_head_screen_build.cu) and the ones that read it (lm_head_screen.cu): the int8 or the int4
// copy, then its three floats a row; the copy in tiles of 32 rows whose 16-byte pieces interleave by row, so
// that a warp reading one piece of each of its 32 rows reads 512 contiguous bytes.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace doze::kernels::screen_layout {

constexpr int kTileRows = 32;    // vocabulary rows a warp screens: one a lane
constexpr int kPieceBytes = 16;  // a lane's load: 16 int8 or 32 int4 weights of its row

// Weights in a piece of a copy of `bits`.
__host__ __device__ constexpr int PieceWeights(int bits) { return kPieceBytes * 8 / bits; }

struct Screen {
  const uint4* q;      // [n_pad / 32][k / PieceWeights][32] pieces of 16 int8 or 32 int4 weights
  const float* scale;  // [n_pad]: s_j
  const float* error;  // [n_pad]: ||w_j - w~_j|| + the fp32 sum's rounding factor
  const float* norm;   // [n_pad]: ||w~_j||
};

inline int PaddedRows(int n) { return (n + kTileRows - 1) / kTileRows * kTileRows; }

// The tiled weights' bytes of a copy of `bits`: what precedes its three floats a row.
inline size_t WeightBytes(int n, int k, int bits) {
  return static_cast<size_t>(PaddedRows(n)) * k * bits / 8;
}

// A copy's bytes: the tiled weights, then three floats a row.
inline size_t CopyBytes(int n, int k, int bits) {
  return WeightBytes(n, k, bits) + 3 * static_cast<size_t>(PaddedRows(n)) * sizeof(float);
}

// The screen at `base`, a copy of `bits`.
inline Screen ScreenAt(const void* base, int n, int k, int bits) {
  const size_t rows = PaddedRows(n);
  const char* bytes = static_cast<const char*>(base);
  const float* floats = reinterpret_cast<const float*>(bytes + WeightBytes(n, k, bits));
  return Screen{reinterpret_cast<const uint4*>(bytes), floats, floats + rows, floats + 2 * rows};
}

// Byte offset of row r's piece c in a tiled copy of `pieces` pieces a row.
__host__ __device__ inline size_t PieceOffset(int r, int c, int pieces) {
  return ((static_cast<size_t>(r / kTileRows) * pieces + c) * kTileRows + r % kTileRows) * kPieceBytes;
}

// The int4 copy's nibble of weight i (0-7) of a 32-bit word: weights 0-3 in the even nibbles, 4-7 in the
// odd ones, so that word & 0x0f0f0f0f holds weights 0-3 as bytes and (word >> 4) & 0x0f0f0f0f weights 4-7.
__host__ __device__ constexpr int NibbleOf(int i) { return i < 4 ? 2 * i : 2 * (i - 4) + 1; }

}  // namespace doze::kernels::screen_layout

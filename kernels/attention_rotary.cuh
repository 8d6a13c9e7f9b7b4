// The rotary embedding of attention heads held in lanes' quarter-row pieces (kernels/paged_attention.cu's
// LoadQuarterRow layout: lane c of a group of four holds dims 32p + 8c .. + 8 of piece p), with
// RotaryAndCacheWrite's arithmetic, for the decode attention that rotates Q and the newest K itself.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/rotary_angle.cuh"
#include "kernels/vec.cuh"

namespace doze::kernels {

// The rotary cos and sin of the pairs (d, d + kHeadDim / 2) a lane holds in its quarter-row pieces (piece p:
// dims 32p + 8c .. + 8, LoadQuarterRow) of the first half, value j = 8p + i for dim 32p + 8c + i, computed as
// RotaryAndCacheWrite does (fp32, rounded to bf16). They depend on the row's position only, which the host
// wrote before the step: the kernel computes them before its grid dependency wait, each pair's once a block
// (the first kHeadDim / 2 threads, through `table`), not once a lane.
template <int kHeadDim>
struct LaneRotation {
  float cos[kHeadDim / 8], sin[kHeadDim / 8];
};

template <int kHeadDim>
__device__ __forceinline__ LaneRotation<kHeadDim> ComputeLaneRotation(int c, float position,
                                                                      const float* inv_freq,
                                                                      float (&table)[2][kHeadDim / 2]) {
  if (threadIdx.x < kHeadDim / 2) {
    const float2 cos_sin = RotaryPairCosSin(position, inv_freq[threadIdx.x]);
    table[0][threadIdx.x] = cos_sin.x;
    table[1][threadIdx.x] = cos_sin.y;
  }
  __syncthreads();
  LaneRotation<kHeadDim> r;
#pragma unroll
  for (int p = 0; p < kHeadDim / 64; ++p) {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      r.cos[8 * p + i] = table[0][32 * p + 8 * c + i];
      r.sin[8 * p + i] = table[1][32 * p + 8 * c + i];
    }
  }
  return r;
}

// Rotates a head held as lane c's quarter-row pieces: each pair (piece p, piece p + kHeadDim / 64) with
// RotaryAndCacheWrite's arithmetic, each result rounded to bf16.
template <int kHeadDim>
__device__ __forceinline__ void RotateQuarterRow(uint4 (&x)[kHeadDim / 32], const LaneRotation<kHeadDim>& r) {
  constexpr int kHalfPieces = kHeadDim / 64;
#pragma unroll
  for (int p = 0; p < kHalfPieces; ++p) {
    // Words of the two pieces, two bf16 values each (low half first); constant indices keep them in
    // registers.
    uint32_t a[4] = {x[p].x, x[p].y, x[p].z, x[p].w};
    uint32_t b[4] = {x[p + kHalfPieces].x, x[p + kHalfPieces].y, x[p + kHalfPieces].z, x[p + kHalfPieces].w};
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      float y1[2], y2[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float c = r.cos[8 * p + 2 * w + h], sn = r.sin[8 * p + 2 * w + h];
        const float x1 = __uint_as_float(h == 0 ? a[w] << 16 : a[w] & 0xffff0000u);
        const float x2 = __uint_as_float(h == 0 ? b[w] << 16 : b[w] & 0xffff0000u);
        y1[h] = x1 * c - x2 * sn;
        y2[h] = x2 * c + x1 * sn;
      }
      a[w] = PackBf16x2(y1[0], y1[1]);
      b[w] = PackBf16x2(y2[0], y2[1]);
    }
    x[p] = make_uint4(a[0], a[1], a[2], a[3]);
    x[p + kHalfPieces] = make_uint4(b[0], b[1], b[2], b[3]);
  }
}

}  // namespace doze::kernels

// BuildLmHeadScreen and LmHeadScreenBytes (kernels/lm_head_screen.h): the int8 and int4 copies of an LM head
// and their per-row factors (kernels/lm_head_screen_bound.h), laid out as kernels/lm_head_screen_layout.cuh
// says.
#include "kernels/cuda_check.h"
#include "kernels/lm_head_screen.h"
#include "kernels/lm_head_screen_bound.h"
#include "kernels/lm_head_screen_layout.cuh"
#include "kernels/vec.cuh"

namespace doze::kernels {
namespace {

using screen_layout::CopyBytes;
using screen_layout::NibbleOf;
using screen_layout::PaddedRows;
using screen_layout::PieceOffset;
using screen_layout::PieceWeights;
using screen_layout::Screen;
using screen_layout::ScreenAt;

constexpr int kBuildRows = 8;  // rows a block of the build kernel quantizes: one a warp

// One warp a vocabulary row: its copy of `kBits`, scale and error factors (zeros past n).
template <int kBits>
static __global__ void __launch_bounds__(kBuildRows * 32)
    BuildScreenKernel(const __nv_bfloat16* __restrict__ w,  // [n, k]
                      char* __restrict__ q,                 // [n_pad * k * kBits / 8], tiled
                      float* __restrict__ scale,            // [n_pad]
                      float* __restrict__ error,            // [n_pad]
                      float* __restrict__ norm,             // [n_pad]
                      int n, int n_pad, int k) {
  constexpr ScreenFormat kFormat = ScreenFormatOf(kBits);
  constexpr int kWeights = PieceWeights(kBits);
  const int lane = threadIdx.x & 31, row = blockIdx.x * kBuildRows + (threadIdx.x >> 5);
  if (row >= n_pad) return;
  const int pieces = k / kWeights;
  const __nv_bfloat16* src = w + static_cast<size_t>(row < n ? row : 0) * k;
  const auto load = [&](int c, float(&v)[kWeights / 8][8]) {
#pragma unroll
    for (int h = 0; h < kWeights / 8; ++h) LoadBf16x8(src + c * kWeights + 8 * h, v[h]);
  };
  float max_abs = 0.f;
  for (int c = lane; c < pieces && row < n; c += 32) {
    float v[kWeights / 8][8];
    load(c, v);
#pragma unroll
    for (int i = 0; i < kWeights; ++i) max_abs = fmaxf(max_abs, fabsf(v[i / 8][i % 8]));
  }
  max_abs = WarpMax(max_abs);
  const float s = ScreenScale(max_abs, kFormat.weight_max),
              inv = ScreenInverseScale(max_abs, kFormat.weight_max);
  double err_sq = 0, q_sq = 0, w_sq = 0;
  for (int c = lane; c < pieces; c += 32) {
    float v[kWeights / 8][8] = {};
    if (row < n) load(c, v);
    uint32_t packed[4] = {};
#pragma unroll
    for (int i = 0; i < kWeights; ++i) {
      const float x = v[i / 8][i % 8];
      const int qi = ScreenQuantize(x, inv, kFormat.weight_max);
      const uint32_t stored = static_cast<uint32_t>(qi + kFormat.offset);
      if constexpr (kBits == 8) {
        packed[i / 4] |= (stored & 0xffu) << (8 * (i % 4));
      } else {
        packed[i / 8] |= stored << (4 * NibbleOf(i % 8));
      }
      const double dq = static_cast<double>(s) * qi;
      err_sq += (x - dq) * (x - dq);
      q_sq += dq * dq;
      w_sq += static_cast<double>(x) * x;
    }
    *reinterpret_cast<uint4*>(q + PieceOffset(row, c, pieces)) =
        make_uint4(packed[0], packed[1], packed[2], packed[3]);
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    err_sq += __shfl_xor_sync(0xffffffffu, err_sq, offset);
    q_sq += __shfl_xor_sync(0xffffffffu, q_sq, offset);
    w_sq += __shfl_xor_sync(0xffffffffu, w_sq, offset);
  }
  if (lane == 0) {
    scale[row] = s;
    error[row] = row < n ? ScreenRowError(err_sq, w_sq, k) : 0.f;
    norm[row] = ScreenRowNorm(q_sq);
  }
}

}  // namespace

size_t LmHeadScreenBytes(int n, int k, int bits) { return CopyBytes(n, k, bits); }

void BuildLmHeadScreen(const __nv_bfloat16* w, void* screen, int n, int k, int bits, cudaStream_t stream) {
  if (!LmHeadScreenSupportsShape(n, k) || (bits != 8 && bits != 4)) {
    CudaFail("BuildLmHeadScreen", "needs k a multiple of 64, at most 4,096, and bits 8 or 4", __FILE__,
             __LINE__);
  }
  const int rows = PaddedRows(n), blocks = (rows + kBuildRows - 1) / kBuildRows;
  const Screen s = ScreenAt(screen, n, k, bits);
  const auto kernel = bits == 8 ? BuildScreenKernel<8> : BuildScreenKernel<4>;
  kernel<<<blocks, kBuildRows * 32, 0, stream>>>(w, reinterpret_cast<char*>(const_cast<uint4*>(s.q)),
                                                 const_cast<float*>(s.scale), const_cast<float*>(s.error),
                                                 const_cast<float*>(s.norm), n, rows, k);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace doze::kernels

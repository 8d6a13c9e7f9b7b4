#include "kernels/cuda_check.h"
#include "kernels/gemv.h"
#include "kernels/pdl.cuh"
#include "kernels/vec.cuh"

namespace doze::kernels {
namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kUnroll = 4;  // 16-byte weight loads in flight per lane

template <typename OutT>
__device__ __forceinline__ void StoreOut(OutT* y, float v);
template <>
__device__ __forceinline__ void StoreOut<float>(float* y, float v) {
  *y = v;
}
template <>
__device__ __forceinline__ void StoreOut<__nv_bfloat16>(__nv_bfloat16* y, float v) {
  *y = __float2bfloat16(v);
}

// Lane l's kUnroll weight vectors of the step at `base`: w_row[8 * (base + 32u), +8), zeros past the row.
__device__ __forceinline__ void LoadWeightStep(const __nv_bfloat16* w_row, int base, int num_vecs,
                                               float (&wv)[kUnroll][8]) {
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int v = base + 32 * u;
    if (v < num_vecs) {
      LoadBf16x8(w_row + v * 8, wv[u]);
    } else {
#pragma unroll
      for (int j = 0; j < 8; ++j) wv[u][j] = 0.f;
    }
  }
}

// One warp per output column j: lane l reads w[j, 8*(l + 32*s) ...] for steps s, kUnroll loads before first
// use. Launched with programmatic dependent launch: the first step's weights (a constant) load before the
// wait on the kernel that writes x.
template <int kRows, typename OutT>
static __global__ void GemvKernel(const __nv_bfloat16* __restrict__ x,     // [m, k]
                                  const __nv_bfloat16* __restrict__ w,     // [n, k]
                                  const __nv_bfloat16* __restrict__ bias,  // [n] or nullptr
                                  OutT* __restrict__ y,                    // [m, n]
                                  int m, int n, int k) {
  const int lane = threadIdx.x & 31;
  const int col = blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
  if (col >= n) return;  // a spare warp of the last block: nothing to wait for or compute
  const __nv_bfloat16* w_row = w + static_cast<int64_t>(col) * k;
  const int num_vecs = k / 8;
  float wv[kUnroll][8];
  LoadWeightStep(w_row, lane, num_vecs, wv);
  GridDependencyWait();
  LaunchDependents();
  float acc[kRows] = {};
  for (int base = lane; base < num_vecs; base += 32 * kUnroll) {
    if (base != lane) LoadWeightStep(w_row, base, num_vecs, wv);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int v = base + 32 * u;
      if (v >= num_vecs) break;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        if (r >= m) break;
        float xv[8];
        LoadBf16x8(x + static_cast<int64_t>(r) * k + v * 8, xv);
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[r] = fmaf(wv[u][j], xv[j], acc[r]);
      }
    }
  }
  const float b = bias != nullptr ? __bfloat162float(bias[col]) : 0.f;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const float sum = WarpSum(acc[r]);
    if (lane == 0 && r < m) StoreOut(y + static_cast<int64_t>(r) * n + col, sum + b);
  }
}

template <int kRows>
void LaunchGemv(const __nv_bfloat16* x, const __nv_bfloat16* w, const __nv_bfloat16* bias, void* y,
                OutType out_type, int m, int n, int k, cudaStream_t stream) {
  const int blocks = (n + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (out_type == OutType::kF32) {
    LaunchWithPdl(GemvKernel<kRows, float>, dim3(blocks), dim3(kWarpsPerBlock * 32), 0, stream, x, w, bias,
                  static_cast<float*>(y), m, n, k);
  } else {
    LaunchWithPdl(GemvKernel<kRows, __nv_bfloat16>, dim3(blocks), dim3(kWarpsPerBlock * 32), 0, stream, x, w,
                  bias, static_cast<__nv_bfloat16*>(y), m, n, k);
  }
}

}  // namespace

void Gemv(const __nv_bfloat16* x, const __nv_bfloat16* w, const __nv_bfloat16* bias, void* y,
          OutType out_type, int m, int n, int k, cudaStream_t stream) {
  if (m == 0) return;
  if (m > kGemvMaxRows || k % 8 != 0) CudaFail("Gemv", "needs m <= 8 and k % 8 == 0", __FILE__, __LINE__);
  if (m == 1) {
    LaunchGemv<1>(x, w, bias, y, out_type, m, n, k, stream);
  } else if (m == 2) {
    LaunchGemv<2>(x, w, bias, y, out_type, m, n, k, stream);
  } else if (m <= 4) {
    LaunchGemv<4>(x, w, bias, y, out_type, m, n, k, stream);
  } else {
    LaunchGemv<8>(x, w, bias, y, out_type, m, n, k, stream);
  }
}

}  // namespace doze::kernels

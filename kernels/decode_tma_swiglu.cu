#include <cuda.h>

#include "kernels/cuda_check.h"
#include "kernels/decode_epilogue.cuh"
#include "kernels/decode_tma_swiglu.h"
#include "kernels/env_knob.h"
#include "kernels/mma_tile.cuh"
#include "kernels/pdl.cuh"
#include "kernels/tensor_map.h"
#include "kernels/tma.cuh"
#include "kernels/wgmma.cuh"

namespace doze::kernels {
namespace {

constexpr int kItems = 40;                            // gate/up pairs a block: wgmma m64n80k16's 80 columns
constexpr int kRows = 64;                             // x rows: wgmma's M
constexpr int kThreads = 128;                         // one warpgroup
constexpr int kWeightBoxBytes = kItems * kPipeK * 2;  // 40 rows of one half, 5,120
constexpr int kXTileBytes = kRows * kPipeK * 2;       // 8,192
constexpr int kStageBytes = 2 * kWeightBoxBytes + kXTileBytes;  // 18,432: 1,024-byte multiples
constexpr int kMaxStages = 12;

struct Params {
  __nv_bfloat16* act;  // [m, num_items]
  int m, num_items, k;
  int early_stages;  // weight boxes asked for before the wait on the previous kernel
  int launch_tile;   // the k-tile at which the block lets the next kernel launch (0: at the wait)
};

#if defined(DOZE_HAVE_WGMMA)
__device__ bool kCompiled = true;
#else
__device__ bool kCompiled = false;
#endif

// Stage s: gate rows [0, 40) and up rows [40, 80) of the block's items (80 x 128 bytes), then x's 64 rows.
__device__ __forceinline__ char* WeightsOf(char* smem, int s) { return smem + s * kStageBytes; }
__device__ __forceinline__ char* XOf(char* smem, int s) {
  return smem + s * kStageBytes + 2 * kWeightBoxBytes;
}

// Block b: items [40 b, 40 b + 40) over all of k. The accumulators d[j][v] are x row 16 w + g + 8 (v >> 1)
// against column 8 j + 2 t + (v & 1): gate columns j < 5, the matching up columns j + 5 (lane = 4 g + t).
template <int kStages>
static __global__ void __launch_bounds__(kThreads, 1)
    DecodeTmaSwiGluKernel(const __grid_constant__ CUtensorMap x_map,
                          const __grid_constant__ CUtensorMap w_map, Params p) {
#if defined(DOZE_HAVE_WGMMA)
  extern __shared__ __align__(1024) char smem[];  // [kStages][gate | up | x], then kStages barriers
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + kStages * kStageBytes);
  if ((SharedAddress(smem) & 1023) != 0) __trap();  // the swizzle atoms need it
  const int tiles = (p.k + kPipeK - 1) / kPipeK;
  const int item0 = blockIdx.x * kItems;
  const bool producer = threadIdx.x == 0;
  auto load_weights = [&](int s, int tile) {
    TmaLoad2d(WeightsOf(smem, s), &w_map, tile * kPipeK, item0, &full[s]);
    TmaLoad2d(WeightsOf(smem, s) + kWeightBoxBytes, &w_map, tile * kPipeK, p.num_items + item0, &full[s]);
  };
  const int first = min(kStages, tiles);
  const int early = min(p.early_stages, first);
  if (producer) {
    for (int s = 0; s < kStages; ++s) BarrierInit(&full[s]);
    FenceBarrierInit();
    // Weights are constant: their first boxes load before the wait (x is the previous kernel's output).
    for (int s = 0; s < early; ++s) {
      BarrierExpectBytes(&full[s], kStageBytes);
      load_weights(s, s);
    }
  }
  __syncthreads();  // the barriers are set up
  GridDependencyWait();
  if (p.launch_tile == 0) LaunchDependents();
  if (producer) {
    for (int s = 0; s < first; ++s) {
      if (s >= early) {
        BarrierExpectBytes(&full[s], kStageBytes);
        load_weights(s, s);
      }
      TmaLoad2d(XOf(smem, s), &x_map, s * kPipeK, 0, &full[s]);
    }
  }
  float acc[10][4] = {};
  const uint64_t w_desc = SwizzledTileDescriptor(SharedAddress(smem));
  const uint64_t x_desc = SwizzledTileDescriptor(SharedAddress(XOf(smem, 0)));
  for (int i = 0; i < tiles; ++i) {
    if (i == p.launch_tile && i > 0) LaunchDependents();
    const int s = i % kStages;
    BarrierWait(&full[s], (i / kStages) & 1);
    const uint32_t stage_units = s * (kStageBytes >> 4);  // the stage's offset in the descriptors' units
    WgmmaFence();
#pragma unroll
    for (int step = 0; step < kPipeK / 16; ++step) {  // 32 bytes of each row a step: 2 descriptor units
      Wgmma<10>(acc, x_desc + stage_units + 2 * step, w_desc + stage_units + 2 * step);
    }
    WgmmaCommitAndWait();
    const int next = i + kStages;
    if (next < tiles) {
      __syncthreads();  // every warp's products of stage s are done: its boxes may be overwritten
      if (producer) {
        BarrierExpectBytes(&full[s], kStageBytes);
        load_weights(s, next);
        TmaLoad2d(XOf(smem, s), &x_map, next * kPipeK, 0, &full[s]);
      }
    }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int j = 0; j < 5; ++j) {
#pragma unroll
    for (int v = 0; v < 4; ++v) {
      const int row = 16 * warp + (lane >> 2) + 8 * (v >> 1);
      const int item = item0 + 8 * j + 2 * (lane & 3) + (v & 1);
      if (row < p.m && item < p.num_items) {
        p.act[static_cast<int64_t>(row) * p.num_items + item] =
            __float2bfloat16(SwiGlu(acc[j][v], acc[j + 5][v]));
      }
    }
  }
#else
  __trap();
#endif
}

bool Compiled() {
  static const bool compiled = [] {
    bool value = false;
    CUDA_CHECK(cudaMemcpyFromSymbol(&value, kCompiled, sizeof(value)));
    return value;
  }();
  return compiled;
}

// Ring stages (DOZE_TMA_SWIGLU_STAGES: 4, 6, 7, 8 or 12; default 6: on the H100 at 64 rows alone 10.0, 9.0
// and 8.9 us with 4, 6 and 8, and in the step 6 stages measured best; kernels/PERF_NOTES.md, seventeenth
// session).
int Stages() {
  static const int stages = EnvInt("DOZE_TMA_SWIGLU_STAGES", 6);
  return stages;
}

// Weight stages asked for before the wait (DOZE_TMA_SWIGLU_EARLY_STAGES): 4; on the H100 2 and 6 measured no
// better.
int EarlyStages() {
  static const int stages = EnvInt("DOZE_TMA_SWIGLU_EARLY_STAGES", 4);
  return stages;
}

// The k-tile of `tiles` at which a block lets the next kernel launch: after 4/7 of them
// (DOZE_TMA_SWIGLU_LAUNCH_SEVENTHS, 1-7; 8: at the wait). On the H100 batch 64 1.060-1.067 -> 1.053-1.054 ms
// against the cp.async kernel's 3/7, 48 -0.7%, 33 unchanged, 7/7 +5% (kernels/PERF_NOTES.md, seventeenth
// session).
int LaunchTile(int tiles) {
  static const int sevenths = EnvInt("DOZE_TMA_SWIGLU_LAUNCH_SEVENTHS", 4);
  return sevenths >= 8 ? 0 : tiles * sevenths / 7;
}

template <int kStages>
void Launch(const CUtensorMap& x_map, const CUtensorMap& w_map, const Params& p, int blocks,
            cudaStream_t stream) {
  static_assert(kStages <= kMaxStages);
  constexpr int kShared = kStages * kStageBytes + kStages * 8;
  void (*kernel)(const CUtensorMap, const CUtensorMap, Params) = DecodeTmaSwiGluKernel<kStages>;
  static const bool opted_in = [kernel] {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kShared));
    return true;
  }();
  (void)opted_in;
  LaunchWithPdl(kernel, dim3(blocks), dim3(kThreads), kShared, stream, x_map, w_map, p);
}

}  // namespace

bool DecodeTmaSwiGluFits(const __nv_bfloat16* x, const __nv_bfloat16* w, int hidden) {
  return TensorMapFits(x, hidden) && TensorMapFits(w, hidden) && Compiled();
}

bool UseDecodeTmaSwiGlu(const __nv_bfloat16* x, const __nv_bfloat16* w, int m, int hidden) {
  static const int min_rows = EnvInt("DOZE_TMA_SWIGLU_MIN_ROWS", 33);
  return m >= min_rows && m <= kRows && UseWgmma() && DecodeTmaSwiGluFits(x, w, hidden);
}

void DecodeTmaSwiGlu(const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* act, int m,
                     int intermediate, int hidden, cudaStream_t stream) {
  if (m <= 0) return;
  if (m > kRows || !DecodeTmaSwiGluFits(x, w, hidden))
    CudaFail("DecodeTmaSwiGlu", "needs 1 <= m <= 64, 16-byte aligned rows and an sm_90a build", __FILE__,
             __LINE__);
  const CUtensorMap x_map = SwizzledBf16Map(x, m, hidden, hidden, kRows);
  const CUtensorMap w_map =
      SwizzledBf16Map(w, 2 * static_cast<int64_t>(intermediate), hidden, hidden, kItems);
  Params p{};
  p.act = act, p.m = m, p.num_items = intermediate, p.k = hidden;
  p.early_stages = EarlyStages();
  p.launch_tile = LaunchTile((hidden + kPipeK - 1) / kPipeK);
  const int blocks = (intermediate + kItems - 1) / kItems;
  switch (Stages()) {
    case 12:
      return Launch<12>(x_map, w_map, p, blocks, stream);
    case 8:
      return Launch<8>(x_map, w_map, p, blocks, stream);
    case 7:
      return Launch<7>(x_map, w_map, p, blocks, stream);
    case 6:
      return Launch<6>(x_map, w_map, p, blocks, stream);
    default:
      return Launch<4>(x_map, w_map, p, blocks, stream);
  }
}

}  // namespace doze::kernels

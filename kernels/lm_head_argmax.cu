#include <algorithm>

#include "kernels/argmax.cuh"
#include "kernels/async_copy.cuh"
#include "kernels/cuda_check.h"
#include "kernels/device_info.h"
#include "kernels/env_knob.h"
#include "kernels/lm_head_argmax.h"
#include "kernels/mma_tile.cuh"
#include "kernels/pdl.cuh"
#include "kernels/wgmma.cuh"

namespace doze::kernels {
namespace {

constexpr int kGroupRows = 128;                 // weight rows a block multiplies at once: 16 a warp
constexpr int kThreads = kGroupRows / 16 * 32;  // two warpgroups
constexpr int kStages = 6;                      // weight tiles in flight a block
constexpr int kWeightTileBytes = kGroupRows * kPipeK * 2;
constexpr int kMaxRows = 64;
constexpr int kMaxXBytes = 116 * 1024;  // x's rows, every k-tile: 64 rows of 896 (Qwen2.5-0.5B) fit
constexpr int kFinalThreads = 256;      // the blocks' bests of one row, at most this many

struct Params {
  const __nv_bfloat16* x;  // [m, k]
  const __nv_bfloat16* w;  // [n, k]
  Best* parts;             // [m, gridDim.x]: each block's best per row
  int m, n, k;
  bool wgmma;  // products on warpgroup instructions (where compiled)
};

int RowTiles(int m) { return m <= 8 ? 1 : m <= 16 ? 2 : m <= 32 ? 4 : 8; }

// Bytes of x's rows in shared memory: `row_tiles` tiles of 8 rows, k bf16 values each.
size_t XBytes(int row_tiles, int k) { return static_cast<size_t>(row_tiles) * 8 * k * 2; }

// Shared memory: the weight stages, x's k-tiles (each on a 1,024-byte boundary), then the warps' bests per
// row at the end.
template <int kNTiles>
size_t SharedBytes(int k) {
  return kStages * kWeightTileBytes + XBytes(kNTiles, k) + kThreads / 32 * kNTiles * 8 * sizeof(Best);
}

// Weight tile q of the block's sequence (group blockIdx.x + (q / ktiles) * gridDim.x, k-tile q % ktiles)
// into `stage`: each thread four 16-byte pieces; rows past n read as zeros.
__device__ __forceinline__ void CopyWeightTile(const Params& p, char* stage, int q, int ktiles) {
  const int group = blockIdx.x + (q / ktiles) * gridDim.x, tile = q % ktiles;
#pragma unroll
  for (int i = 0; i < kWeightTileBytes / 16 / kThreads; ++i) {
    const int e = threadIdx.x + i * kThreads, row = e >> 3, c = e & 7;
    const int wrow = group * kGroupRows + row;
    const bool valid = wrow < p.n;
    const __nv_bfloat16* src = p.w + static_cast<int64_t>(valid ? wrow : 0) * p.k + tile * kPipeK + 8 * c;
    CopyAsync16<CopyCache::kL2Only>(stage + SwizzledOffset(row, c), src, valid);
  }
}

// Every k-tile of x's rows [0, kNTiles * 8) into `xs` (tile t at t * kNTiles * 1,024 bytes); rows past m
// read as zeros.
template <int kNTiles>
__device__ __forceinline__ void CopyX(const Params& p, char* xs) {
  const int pieces = kNTiles * 8 * (p.k / 8);
  for (int e = threadIdx.x; e < pieces; e += kThreads) {
    const int row = e / (p.k / 8), v = e % (p.k / 8), tile = v / 8, c = v % 8;
    const bool valid = row < p.m;
    const __nv_bfloat16* src = p.x + static_cast<int64_t>(valid ? row : 0) * p.k + 8 * v;
    CopyAsync16<CopyCache::kL1AndL2>(xs + tile * kNTiles * 1024 + SwizzledOffset(row, c), src, valid);
  }
}

// acc += the block's 128 weight rows (stage at shared address `w_stage`) x x's rows over one k-tile.
template <int kNTiles>
__device__ __forceinline__ void MultiplyTile(const Params& p, uint32_t w_stage, uint32_t x_tile,
                                             float (&acc)[kNTiles][4]) {
#if defined(DOZE_HAVE_WGMMA)
  if (p.wgmma) {
    WgmmaTile<kNTiles>(SwizzledTileDescriptor(w_stage + (PipeTile() / 4) * 64 * 128),
                       SwizzledTileDescriptor(x_tile), acc);
    return;
  }
#endif
  MmaTile<kNTiles>(w_stage, x_tile, acc);
}

// After a group's last k-tile: each of the lane's x rows keeps its best of the group's logits it holds. A
// lane holds x rows 8j + 2t + h against weight rows 16 warp + g (acc[j][h]) and + 8 (acc[j][2 + h]), lane =
// 4g + t.
template <int kNTiles>
__device__ __forceinline__ void KeepBest(const Params& p, int group, float (&acc)[kNTiles][4],
                                         Best (&best)[kNTiles][2]) {
  const int row0 = group * kGroupRows + 16 * (threadIdx.x >> 5) + ((threadIdx.x & 31) >> 2);
#pragma unroll
  for (int j = 0; j < kNTiles; ++j) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      if (row0 < p.n) best[j][h] = Better(best[j][h], Best{acc[j][h], row0});
      if (row0 + 8 < p.n) best[j][h] = Better(best[j][h], Best{acc[j][2 + h], row0 + 8});
      acc[j][h] = acc[j][2 + h] = 0.f;
    }
  }
}

// The block's best per x row into parts: the eight lanes of one t meet by shuffles, the warps through shared
// memory.
template <int kNTiles>
__device__ __forceinline__ void WriteBlockBest(const Params& p, Best (&best)[kNTiles][2],
                                               Best (*warp_best)[kNTiles * 8]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int j = 0; j < kNTiles; ++j) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      Best b = best[j][h];
#pragma unroll
      for (int offset = 4; offset < 32; offset <<= 1) {
        const Best other{__shfl_xor_sync(0xffffffffu, b.value, offset),
                         __shfl_xor_sync(0xffffffffu, b.index, offset)};
        b = Better(b, other);
      }
      if (g == 0) warp_best[warp][8 * j + 2 * t + h] = b;
    }
  }
  __syncthreads();
  if (threadIdx.x < p.m) {
    Best b = NoBest();
    for (int w = 0; w < kThreads / 32; ++w) b = Better(b, warp_best[w][threadIdx.x]);
    p.parts[static_cast<int64_t>(threadIdx.x) * gridDim.x + blockIdx.x] = b;
  }
}

// One block a multiprocessor: x's rows stay in shared memory; the block's groups of 128 weight rows (group
// blockIdx.x, then every gridDim.x-th) stream through the stages one k-tile at a time, the first kStages - 1
// before the wait on the previous kernel (weights are constant).
template <int kNTiles>
static __global__ void __launch_bounds__(kThreads) LmHeadArgmaxKernel(Params p) {
  extern __shared__ __align__(1024) char smem[];
  const uint32_t smem_base = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
#if defined(DOZE_HAVE_WGMMA)
  if (p.wgmma && (smem_base & 1023) != 0) __trap();  // the swizzle atoms need it
#endif
  char* xs = smem + kStages * kWeightTileBytes;
  auto* warp_best = reinterpret_cast<Best(*)[kNTiles * 8]>(xs + kNTiles * 8 * p.k * 2);
  const int ktiles = p.k / kPipeK;
  const int groups = (p.n + kGroupRows - 1) / kGroupRows;
  const int my_groups = (groups - static_cast<int>(blockIdx.x) + gridDim.x - 1) / gridDim.x;
  const int count = my_groups * ktiles;
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < count) CopyWeightTile(p, smem + s * kWeightTileBytes, s, ktiles);
    CommitAsyncCopies();
  }
  GridDependencyWait();
  LaunchDependents();
  CopyX<kNTiles>(p, xs);
  CommitAsyncCopies();
  float acc[kNTiles][4] = {};
  Best best[kNTiles][2];
#pragma unroll
  for (int j = 0; j < kNTiles; ++j) best[j][0] = best[j][1] = NoBest();
  for (int q = 0; q < count; ++q) {
    if (q == 0) {
      WaitAsyncCopies<0>();  // x too
    } else {
      WaitAsyncCopies<kStages - 2>();
    }
#if defined(DOZE_HAVE_WGMMA)
    if (p.wgmma) FenceSharedForAsyncProxy();
#endif
    __syncthreads();  // tile q is in; every warp is done with tile q - 1, whose stage the next copy reuses
    if (q + kStages - 1 < count)
      CopyWeightTile(p, smem + ((q + kStages - 1) % kStages) * kWeightTileBytes, q + kStages - 1, ktiles);
    CommitAsyncCopies();
    const int tile = q % ktiles;
    MultiplyTile<kNTiles>(p, smem_base + (q % kStages) * kWeightTileBytes,
                          smem_base + kStages * kWeightTileBytes + tile * kNTiles * 1024, acc);
    if (tile == ktiles - 1) KeepBest<kNTiles>(p, blockIdx.x + (q / ktiles) * gridDim.x, acc, best);
  }
  WriteBlockBest<kNTiles>(p, best, warp_best);
}

// Row blockIdx.x's best of the `parts` blocks' bests.
static __global__ void __launch_bounds__(kFinalThreads)
    LmHeadArgmaxFinalKernel(const Best* __restrict__ parts,  // [m, num_parts]
                            int32_t* __restrict__ tokens,    // [m]
                            int num_parts) {
  GridDependencyWait();
  LaunchDependents();
  const Best mine =
      threadIdx.x < num_parts ? parts[static_cast<int64_t>(blockIdx.x) * num_parts + threadIdx.x] : NoBest();
  const Best best = BlockArgmax(mine);
  if (threadIdx.x == 0) tokens[blockIdx.x] = TokenOf(best);
}

int Blocks(int n) {
  return std::min((n + kGroupRows - 1) / kGroupRows, std::min(MultiprocessorCount(), kFinalThreads));
}

template <int kNTiles>
void Launch(const Params& p, int blocks, cudaStream_t stream) {
  const size_t shared = SharedBytes<kNTiles>(p.k);
  static const bool opted_in = [] {
    CUDA_CHECK(cudaFuncSetAttribute(LmHeadArgmaxKernel<kNTiles>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(SharedBytes<kNTiles>(kMaxXBytes / (kNTiles * 8 * 2)))));
    return true;
  }();
  (void)opted_in;
  LaunchWithPdl(LmHeadArgmaxKernel<kNTiles>, dim3(blocks), dim3(kThreads), shared, stream, p);
}

}  // namespace

bool LmHeadArgmaxSupports(int m, int n, int k) {
  return m >= 1 && m <= kMaxRows && n >= 1 && k >= kPipeK && k % kPipeK == 0 &&
         XBytes(RowTiles(m), k) <= static_cast<size_t>(kMaxXBytes);
}

bool LmHeadArgmaxPreferred(int m, int n, int k) {
  static const int min_rows = EnvInt("DOZE_LM_HEAD_ARGMAX_MIN_ROWS", 1);
  return m >= min_rows && LmHeadArgmaxSupports(m, n, k);
}

size_t LmHeadArgmaxWorkspaceBytes(int m) {
  return static_cast<size_t>(std::max(m, 0)) * kFinalThreads * sizeof(Best);
}

void LmHeadArgmax(const __nv_bfloat16* x, const __nv_bfloat16* w, int32_t* tokens, int m, int n, int k,
                  void* workspace, cudaStream_t stream) {
  if (m == 0) return;
  if (!LmHeadArgmaxSupports(m, n, k)) {
    CudaFail("LmHeadArgmax", "needs 1 <= m <= 64, k % 64 == 0 and x within the shared-memory budget",
             __FILE__, __LINE__);
  }
  const int blocks = Blocks(n);
  const Params p{x, w, static_cast<Best*>(workspace), m, n, k, UseWgmma()};
  switch (RowTiles(m)) {
    case 1:
      Launch<1>(p, blocks, stream);
      break;
    case 2:
      Launch<2>(p, blocks, stream);
      break;
    case 4:
      Launch<4>(p, blocks, stream);
      break;
    default:
      Launch<8>(p, blocks, stream);
      break;
  }
  LaunchWithPdl(LmHeadArgmaxFinalKernel, dim3(m), dim3(kFinalThreads), 0, stream,
                static_cast<const Best*>(p.parts), tokens, blocks);
}

}  // namespace doze::kernels

#include <algorithm>
#include <cmath>

#include "kernels/argmax.cuh"
#include "kernels/cuda_check.h"
#include "kernels/device_info.h"
#include "kernels/env_knob.h"
#include "kernels/lm_head_screen.h"
#include "kernels/lm_head_screen_bound.h"
#include "kernels/pdl.cuh"
#include "kernels/rms_norm.cuh"
#include "kernels/vec.cuh"

namespace doze::kernels {
namespace {

constexpr int kTileRows = 32;  // vocabulary rows a warp screens: one a lane
constexpr int kWarps = 4;      // tiles a block: 128 rows, one of them evaluated exactly
constexpr int kThreads = kWarps * 32;
static_assert(kThreads == kAddRmsNormThreads, "the screen's norm holds the row as RmsNorm's block does");
constexpr int kChunk = 16;    // weights in a lane's 16-byte load
constexpr int kInFlight = 4;  // loads a lane keeps in flight
constexpr int kMaxRows = 4;   // x rows
constexpr int kMaxK = 4096;   // x's 16-bit copy, every row, in shared memory
constexpr int kFinalThreads = 256;
constexpr int kBuildRows = 8;  // rows a block of the build kernel quantizes: one a warp

struct Screen {
  const uint4* q;      // [n_pad / 32][k / 16][32] pieces of 16 int8 weights
  const float* scale;  // [n_pad]: s_j
  const float* error;  // [n_pad]: ||w_j - w~_j|| + the fp32 sum's rounding factor
  const float* norm;   // [n_pad]: ||w~_j||
};

// A block's result for one x row: its evaluated row's fp32 logit and id, and the largest upper bound of
// its other rows.
struct Part {
  float value;
  int index;
  float upper;
};

int PaddedRows(int n) { return (n + kTileRows - 1) / kTileRows * kTileRows; }
// Blocks of a grid whose warps take tiles_per_warp tiles of 32 rows each.
int ScreenBlocks(int n, int tiles_per_warp) {
  return (PaddedRows(n) / kTileRows + kWarps * tiles_per_warp - 1) / (kWarps * tiles_per_warp);
}
// The workspace of m rows: every row's bound ([m, n] floats), then on a 256-byte boundary each block's Part
// ([m, blocks]).
size_t PartsOffset(int m, int n) { return (static_cast<size_t>(m) * n * sizeof(float) + 255) / 256 * 256; }

Screen ScreenAt(const void* base, int n, int k) {
  const size_t rows = PaddedRows(n);
  const char* bytes = static_cast<const char*>(base);
  const float* floats = reinterpret_cast<const float*>(bytes + rows * k);
  return Screen{reinterpret_cast<const uint4*>(bytes), floats, floats + rows, floats + 2 * rows};
}

// Byte offset of row r's chunk c in the tiled int8 copy.
__host__ __device__ inline size_t PieceOffset(int r, int c, int chunks) {
  return ((static_cast<size_t>(r / kTileRows) * chunks + c) * kTileRows + r % kTileRows) * kChunk;
}

// x . w in fp32 over k (a multiple of 8), by one warp: lane l sums pieces l, l + 32, ... in order, then the
// lanes' sums meet by a butterfly; every lane returns the same value, the same for every caller.
__device__ __forceinline__ float ExactLogit(const __nv_bfloat16* x, const __nv_bfloat16* w, int k, int lane) {
  float sum = 0.f;
  for (int piece = lane; piece < k / 8; piece += 32) {
    float a[8], b[8];
    LoadBf16x8(x + 8 * piece, a);
    LoadBf16x8(w + 8 * piece, b);
#pragma unroll
    for (int i = 0; i < 8; ++i) sum = fmaf(a[i], b[i], sum);
  }
  return WarpSum(sum);
}

// One warp a vocabulary row: its int8 copy, scale and error factors (zeros past n).
static __global__ void __launch_bounds__(kBuildRows * 32)
    BuildScreenKernel(const __nv_bfloat16* __restrict__ w,  // [n, k]
                      char* __restrict__ q,                 // [n_pad * k], tiled
                      float* __restrict__ scale,            // [n_pad]
                      float* __restrict__ error,            // [n_pad]
                      float* __restrict__ norm,             // [n_pad]
                      int n, int n_pad, int k) {
  const int lane = threadIdx.x & 31, row = blockIdx.x * kBuildRows + (threadIdx.x >> 5);
  if (row >= n_pad) return;
  const int chunks = k / kChunk;
  const __nv_bfloat16* src = w + static_cast<size_t>(row < n ? row : 0) * k;
  float max_abs = 0.f;
  for (int c = lane; c < chunks && row < n; c += 32) {
    float v[2][8];
    LoadBf16x8(src + c * kChunk, v[0]);
    LoadBf16x8(src + c * kChunk + 8, v[1]);
#pragma unroll
    for (int i = 0; i < 16; ++i) max_abs = fmaxf(max_abs, fabsf(v[i / 8][i % 8]));
  }
  max_abs = WarpMax(max_abs);
  const float s = ScreenScale(max_abs, kScreenWeightMax), inv = ScreenInverseScale(max_abs, kScreenWeightMax);
  double err_sq = 0, q_sq = 0, w_sq = 0;
  for (int c = lane; c < chunks; c += 32) {
    float v[2][8] = {};
    if (row < n) {
      LoadBf16x8(src + c * kChunk, v[0]);
      LoadBf16x8(src + c * kChunk + 8, v[1]);
    }
    uint32_t packed[4] = {};
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      const float x = v[i / 8][i % 8];
      const int qi = ScreenQuantize(x, inv, kScreenWeightMax);
      packed[i / 4] |= (static_cast<uint32_t>(qi) & 0xffu) << (8 * (i % 4));
      const double dq = static_cast<double>(s) * qi;
      err_sq += (x - dq) * (x - dq);
      q_sq += dq * dq;
      w_sq += static_cast<double>(x) * x;
    }
    *reinterpret_cast<uint4*>(q + PieceOffset(row, c, chunks)) =
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

struct Params {
  const __nv_bfloat16* x;  // [m, k]: the rows (norm.out with norm.residual, written by block 0)
  const __nv_bfloat16* w;  // [n, k]
  ScreenNorm norm;
  Screen screen;
  float* upper;  // [m, n]: every row's bound
  Part* parts;   // [m, gridDim.x]
  int m, n, k;
  int tiles_per_warp;
};

// x's statistics for one row, shared by the block.
struct XStats {
  float step;   // t: x~ = t p
  float norm;   // ||x||, rounded up
  float error;  // ||x - x~||, rounded up
};

// With p.norm.residual: x's rows as RmsNorm computes them (its block's arithmetic, kernels/rms_norm.cuh),
// into `x` ([kRows][k] in shared memory) and, by block 0, into p.norm.out for the final kernel.
// Returns where x's rows are.
template <int kRows>
__device__ __forceinline__ const __nv_bfloat16* NormalizeX(const Params& p, __nv_bfloat16* x) {
  if (p.norm.residual == nullptr) return p.x;
  __shared__ float scratch[kWarps];
  for (int j = 0; j < p.m; ++j) {
    HeldRow<1> row;
    LoadHeldRow(row, p.norm.residual + static_cast<size_t>(j) * p.k, p.norm.weight, p.k, kThreads);
    const float inv_rms = HeldRowInvRms(row, p.k, kThreads, p.norm.eps, scratch);
    WriteHeldRow(row, x + j * p.k, p.k, kThreads, inv_rms);
    if (blockIdx.x != 0) continue;
    __nv_bfloat16* out = p.norm.out + static_cast<size_t>(j) * p.k;
    ForEachHeldVector<1>(p.k, kThreads, [&](int v, int i) { StoreBf16x8(out + i, row.v[v]); });
  }
  __syncthreads();
  return x;
}

// x's rows (`x`, global or shared memory) as 16-bit integers into `xs` ([kRows][k], rows past m zeros) and
// their statistics, by the whole block: a pass for max |x| and the sum of squares, a second to round.
template <int kRows>
__device__ __forceinline__ void QuantizeX(const Params& p, const __nv_bfloat16* x, int16_t* xs,
                                          XStats* stats) {
  __shared__ float partial[kRows][kWarps][2];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, limit = ScreenXQuantMax(p.k);
#pragma unroll
  for (int j = 0; j < kRows; ++j) {
    float max_abs = 0.f, sum_sq = 0.f;
    for (int e = threadIdx.x; e < p.k && j < p.m; e += kThreads) {
      const float v = __bfloat162float(x[static_cast<size_t>(j) * p.k + e]);
      max_abs = fmaxf(max_abs, fabsf(v));
      sum_sq = fmaf(v, v, sum_sq);
    }
    max_abs = WarpMax(max_abs);
    sum_sq = WarpSum(sum_sq);
    if (lane == 0) {
      partial[j][warp][0] = max_abs;
      partial[j][warp][1] = sum_sq;
    }
  }
  __syncthreads();
#pragma unroll
  for (int j = 0; j < kRows; ++j) {
    float max_abs = 0.f, sum_sq = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      max_abs = fmaxf(max_abs, partial[j][w][0]);
      sum_sq += partial[j][w][1];
    }
    const float inv = ScreenInverseScale(max_abs, limit);
    for (int e = threadIdx.x; e < p.k; e += kThreads) {
      const float v = j < p.m ? __bfloat162float(x[static_cast<size_t>(j) * p.k + e]) : 0.f;
      xs[j * p.k + e] = static_cast<int16_t>(ScreenQuantize(v, inv, limit));
    }
    if (threadIdx.x == 0) {
      const float step = ScreenScale(max_abs, limit);
      stats[j] = XStats{step, ScreenXNorm(sum_sq, p.k), ScreenXError(step, p.k)};
    }
  }
  __syncthreads();
}

// acc[j] += x_j's 16 integers of chunk c (shared memory, a broadcast) times the lane's 16 int8 weights.
template <int kRows>
__device__ __forceinline__ void DotChunk(const int16_t* xs, int k, int c, const uint4& w,
                                         int32_t (&acc)[kRows]) {
#pragma unroll
  for (int j = 0; j < kRows; ++j) {
    const int4* xr = reinterpret_cast<const int4*>(xs + j * k + c * kChunk);
    const int4 a = xr[0], b = xr[1];
    int32_t s = acc[j];
    s = __dp2a_lo(a.x, static_cast<int>(w.x), s);
    s = __dp2a_hi(a.y, static_cast<int>(w.x), s);
    s = __dp2a_lo(a.z, static_cast<int>(w.y), s);
    s = __dp2a_hi(a.w, static_cast<int>(w.y), s);
    s = __dp2a_lo(b.x, static_cast<int>(w.z), s);
    s = __dp2a_hi(b.y, static_cast<int>(w.z), s);
    s = __dp2a_lo(b.z, static_cast<int>(w.w), s);
    s = __dp2a_hi(b.w, static_cast<int>(w.w), s);
    acc[j] = s;
  }
}

// A lane's screened rows for one x row: the one of largest integer logit (lowest id on ties) with its bound,
// and the largest bound of the others.
struct LaneRows {
  Best best = NoBest();
  float best_upper = -INFINITY;
  float other_upper = -INFINITY;

  __device__ void Add(float approx, float upper, int row) {
    const Best candidate{approx, row};
    if (Better(best, candidate).index == row) {
      other_upper = fmaxf(other_upper, best_upper);
      best = candidate;
      best_upper = upper;
    } else {
      other_upper = fmaxf(other_upper, upper);
    }
  }
};

// A vocabulary row's screen factors (zeros past n).
struct RowFactors {
  float scale = 0.f, error = 0.f, norm = 0.f;
};

__device__ __forceinline__ RowFactors LoadRowFactors(const Screen& screen, int row, int n) {
  if (row >= n) return RowFactors{};
  return RowFactors{screen.scale[row], screen.error[row], screen.norm[row]};
}

// Each warp screens tiles_per_warp tiles of 32 vocabulary rows (a lane a row, its int8 row kInFlight loads at
// a time, the first before the wait; tile t of warp w is tile (block * tiles_per_warp + t) * 4 + w); the
// block then evaluates exactly its best row per x row and keeps its other rows' largest bound.
template <int kRows>
static __global__ void __launch_bounds__(kThreads, kRows == 1   ? 9
                                                   : kRows == 2 ? 8
                                                                : 4) ScreenKernel(Params p) {
  extern __shared__ __align__(16) int16_t xs[];  // [kRows][k], then with p.norm x's rows [kRows][k] in bf16
  __shared__ XStats stats[kRows];
  __shared__ Best warp_best[kRows][kWarps];
  __shared__ float warp_upper[kRows][kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, chunks = p.k / kChunk;
  const auto tile_of = [&](int t) {
    return (static_cast<int>(blockIdx.x) * p.tiles_per_warp + t) * kWarps + warp;
  };
  int my_tiles = 0;
  while (my_tiles < p.tiles_per_warp && tile_of(my_tiles) * kTileRows < p.n) ++my_tiles;
  // Chunk q of the warp's sequence: tile q / chunks, chunk q % chunks.
  const auto piece = [&](int q) {
    const int t = q / chunks;
    return p.screen.q + (static_cast<size_t>(tile_of(t)) * chunks + (q - t * chunks)) * kTileRows + lane;
  };
  const int total = my_tiles * chunks;
  uint4 wv[kInFlight];
#pragma unroll
  for (int i = 0; i < kInFlight; ++i) wv[i] = i < total ? __ldcs(piece(i)) : make_uint4(0, 0, 0, 0);
  RowFactors factors = LoadRowFactors(p.screen, tile_of(0) * kTileRows + lane, p.n);
  GridDependencyWait();
  LaunchDependents();
  const __nv_bfloat16* x = NormalizeX<kRows>(p, reinterpret_cast<__nv_bfloat16*>(xs + kRows * p.k));
  QuantizeX<kRows>(p, x, xs, stats);

  int32_t acc[kRows] = {};
  LaneRows mine[kRows];
  for (int q0 = 0, c0 = 0, t = 0; q0 < total; q0 += kInFlight) {
#pragma unroll
    for (int i = 0; i < kInFlight; ++i) {
      const uint4 w = wv[i];
      const int next = q0 + i + kInFlight;
      if (next < total) wv[i] = __ldcs(piece(next));
      DotChunk<kRows>(xs, p.k, c0 + i, w, acc);
    }
    c0 += kInFlight;
    if (c0 < chunks) continue;
    const int row = tile_of(t) * kTileRows + lane;  // tile t is done
#pragma unroll
    for (int j = 0; j < kRows; ++j) {
      const float approx = ScreenApproxLogit(stats[j].step, factors.scale, acc[j]);
      const float upper = ScreenUpper(approx, stats[j].norm, stats[j].error, factors.error, factors.norm);
      if (row < p.n) {
        if (j < p.m) p.upper[static_cast<size_t>(j) * p.n + row] = upper;
        mine[j].Add(approx, upper, row);
      }
      acc[j] = 0;
    }
    c0 = 0;
    ++t;
    if (t < my_tiles) factors = LoadRowFactors(p.screen, tile_of(t) * kTileRows + lane, p.n);
  }

#pragma unroll
  for (int j = 0; j < kRows; ++j) {
    const Best best = WarpArgmax(mine[j].best);
    if (lane == 0) warp_best[j][warp] = best;
  }
  __syncthreads();
  Best chosen[kRows];
#pragma unroll
  for (int j = 0; j < kRows; ++j) {
    chosen[j] = NoBest();
#pragma unroll
    for (int w = 0; w < kWarps; ++w) chosen[j] = Better(chosen[j], warp_best[j][w]);
    const bool holds_chosen = mine[j].best.index == chosen[j].index;
    const float other =
        WarpMax(holds_chosen ? mine[j].other_upper : fmaxf(mine[j].best_upper, mine[j].other_upper));
    if (lane == 0) warp_upper[j][warp] = other;
  }
  __syncthreads();
#pragma unroll
  for (int j = 0; j < kRows; ++j) {
    if (warp != j || j >= p.m) continue;
    float others = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) others = fmaxf(others, warp_upper[j][w]);
    if (!isfinite(stats[j].norm)) others = INFINITY;  // x not finite: no bound holds, every row is evaluated
    const int index = chosen[j].index;
    const bool valid = index >= 0 && index < p.n;
    const float value = valid ? ExactLogit(x + static_cast<size_t>(j) * p.k,
                                           p.w + static_cast<size_t>(index) * p.k, p.k, lane)
                              : -INFINITY;
    if (lane == 0) p.parts[static_cast<size_t>(j) * gridDim.x + blockIdx.x] = Part{value, index, others};
  }
}

// The block's best (value, index) and largest bound, in every thread; blockDim.x == kFinalThreads.
__device__ __forceinline__ void BlockBestAndUpper(Best& best, float& upper) {
  __shared__ Best bests[kFinalThreads / 32];
  __shared__ float uppers[kFinalThreads / 32];
  best = WarpArgmax(best);
  upper = WarpMax(upper);
  if ((threadIdx.x & 31) == 0) {
    bests[threadIdx.x >> 5] = best;
    uppers[threadIdx.x >> 5] = upper;
  }
  __syncthreads();
#pragma unroll
  for (int w = 0; w < kFinalThreads / 32; ++w) {
    best = Better(best, bests[w]);
    upper = fmaxf(upper, uppers[w]);
  }
}

// x row blockIdx.x's token: the best of the blocks' exact logits, unless some row a block did not evaluate
// may reach it; then every row whose bound reaches it (or is NaN), evaluated exactly by the block's warps. A
// row of x that is not finite leaves no bound meaning anything (ScreenKernel's parts then say +inf): every
// row is evaluated, and the token is the bf16 pass's (TokenOf).
static __global__ void __launch_bounds__(kFinalThreads)
    ScreenFinalKernel(const Part* __restrict__ parts,  // [m, num_parts]
                      int num_parts,
                      const float* __restrict__ upper,  // [m, n]
                      const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                      int32_t* __restrict__ tokens,  // [m]
                      int n, int k) {
  GridDependencyWait();
  LaunchDependents();
  const int j = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  Best best = NoBest();
  float others = -INFINITY;
  for (int b = threadIdx.x; b < num_parts; b += kFinalThreads) {
    const Part part = parts[static_cast<size_t>(j) * num_parts + b];
    best = Better(best, Best{part.value, part.index});
    others = fmaxf(others, part.upper);
  }
  BlockBestAndUpper(best, others);
  if (!(others < best.value)) {
    const float threshold = best.value;
    const float* row_upper = upper + static_cast<size_t>(j) * n;
    const __nv_bfloat16* xj = x + static_cast<size_t>(j) * k;
    Best mine = NoBest();
    for (int base = warp * 32; base < n; base += kFinalThreads) {
      const int r = base + lane;
      unsigned candidates = __ballot_sync(0xffffffffu, r < n && !(row_upper[r] < threshold));
      while (candidates != 0) {
        const int c = base + __ffs(candidates) - 1;
        candidates &= candidates - 1;
        mine = Better(mine, Best{ExactLogit(xj, w + static_cast<size_t>(c) * k, k, lane), c});
      }
    }
    best = Better(best, BlockArgmax(mine));
  }
  if (threadIdx.x == 0) tokens[j] = TokenOf(best);
}

// Launches the screen for kRows with as many tiles a warp as it takes for every block to be resident at once
// (a second wave would leave a tail of blocks streaming alone); returns the grid's blocks.
// Registers, not x's few KB of shared memory, bound the blocks a multiprocessor holds: the count is taken
// once.
template <int kRows>
int LaunchScreen(Params p, cudaStream_t stream) {
  const size_t shared = static_cast<size_t>(kRows) * p.k * (sizeof(int16_t) + sizeof(__nv_bfloat16));
  static const int resident = [shared] {
    int per_multiprocessor = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_multiprocessor, ScreenKernel<kRows>,
                                                             kThreads, shared));
    return std::max(per_multiprocessor, 1) * MultiprocessorCount();
  }();
  const int tiles = PaddedRows(p.n) / kTileRows;
  p.tiles_per_warp = std::max(1, (tiles + kWarps * resident - 1) / (kWarps * resident));
  const int blocks = ScreenBlocks(p.n, p.tiles_per_warp);
  LaunchWithPdl(ScreenKernel<kRows>, dim3(blocks), dim3(kThreads), shared, stream, p);
  return blocks;
}

}  // namespace

bool LmHeadScreenSupportsShape(int n, int k) { return n >= 1 && k >= 64 && k % 64 == 0 && k <= kMaxK; }

bool LmHeadScreenPreferred(int m, int n, int k) {
  static const bool enabled = EnvFlag("DOZE_LM_HEAD_SCREEN");
  return enabled && m >= 1 && m <= kMaxRows && LmHeadScreenSupportsShape(n, k);
}

size_t LmHeadScreenBytes(int n, int k) {
  const size_t rows = PaddedRows(n);
  return rows * k + 3 * rows * sizeof(float);
}

void BuildLmHeadScreen(const __nv_bfloat16* w, void* screen, int n, int k, cudaStream_t stream) {
  if (!LmHeadScreenSupportsShape(n, k)) {
    CudaFail("BuildLmHeadScreen", "needs k a multiple of 64, at most 4,096", __FILE__, __LINE__);
  }
  const int rows = PaddedRows(n);
  const Screen s = ScreenAt(screen, n, k);
  BuildScreenKernel<<<(rows + kBuildRows - 1) / kBuildRows, kBuildRows * 32, 0, stream>>>(
      w, static_cast<char*>(screen), const_cast<float*>(s.scale), const_cast<float*>(s.error),
      const_cast<float*>(s.norm), n, rows, k);
  CUDA_CHECK(cudaGetLastError());
}

size_t LmHeadScreenWorkspaceBytes(int m, int n) {
  m = std::clamp(m, 0, kMaxRows);
  return PartsOffset(m, n) + static_cast<size_t>(m) * ScreenBlocks(n, 1) * sizeof(Part);
}

bool LmHeadScreenNormFits(int k) { return k <= kAddRmsNormThreads * 8; }

void LmHeadScreenedArgmax(const __nv_bfloat16* x, const __nv_bfloat16* w, const void* screen, int32_t* tokens,
                          int m, int n, int k, void* workspace, cudaStream_t stream, const ScreenNorm& norm) {
  if (m == 0) return;
  if (m < 0 || m > kMaxRows || !LmHeadScreenSupportsShape(n, k)) {
    CudaFail("LmHeadScreenedArgmax", "needs 1 <= m <= 4 and k a multiple of 64, at most 4,096", __FILE__,
             __LINE__);
  }
  if (norm.residual != nullptr && (!LmHeadScreenNormFits(k) || norm.out == nullptr))
    CudaFail("LmHeadScreenedArgmax", "the norm takes k of at most 1,024 and an output", __FILE__, __LINE__);
  const __nv_bfloat16* rows = norm.residual != nullptr ? norm.out : x;
  char* bytes = static_cast<char*>(workspace);
  float* upper = reinterpret_cast<float*>(bytes);
  Part* parts = reinterpret_cast<Part*>(bytes + PartsOffset(m, n));
  const Params p{rows, w, norm, ScreenAt(screen, n, k), upper, parts, m, n, k, 1};
  const int blocks = m == 1   ? LaunchScreen<1>(p, stream)
                     : m == 2 ? LaunchScreen<2>(p, stream)
                              : LaunchScreen<4>(p, stream);
  LaunchWithPdl(ScreenFinalKernel, dim3(m), dim3(kFinalThreads), 0, stream, static_cast<const Part*>(parts),
                blocks, static_cast<const float*>(upper), rows, w, tokens, n, k);
}

}  // namespace doze::kernels

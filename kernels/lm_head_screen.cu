#include <algorithm>
#include <cmath>

#include "kernels/argmax.cuh"
#include "kernels/cuda_check.h"
#include "kernels/device_info.h"
#include "kernels/env_knob.h"
#include "kernels/lm_head_screen.h"
#include "kernels/lm_head_screen_bound.h"
#include "kernels/lm_head_screen_layout.cuh"
#include "kernels/pdl.cuh"
#include "kernels/rms_norm.cuh"
#include "kernels/vec.cuh"

namespace doze::kernels {
namespace {

using screen_layout::kTileRows;
using screen_layout::PaddedRows;
using screen_layout::PieceWeights;
using screen_layout::Screen;
using screen_layout::ScreenAt;

constexpr int kWarps = 4;  // tiles a block: 128 rows, one of them evaluated exactly
constexpr int kThreads = kWarps * 32;
static_assert(kThreads == kAddRmsNormThreads, "the screen's norm holds the row as RmsNorm's block does");
constexpr int kInFlight = 4;  // loads a lane keeps in flight
constexpr int kMaxRows = 4;   // x rows
constexpr int kMaxK = 4096;   // x's 16-bit copy, every row, in shared memory
constexpr int kFinalThreads = 256;
constexpr int kSettleThreads = 256;     // SettleKernel's block
constexpr int kSettleRowsPerWarp = 64;  // rows a warp of SettleKernel checks
constexpr int kSettleRows = kSettleThreads / 32 * kSettleRowsPerWarp;
constexpr int kSettleAtOnce = 2;  // exact rows a warp of SettleKernel evaluates together

// A block's result for one x row: the fp32 logit and id of the best row it evaluated exactly, and the
// largest upper bound of the rows it screened or checked and did not evaluate.
struct Part {
  float value;
  int index;
  float upper;
};

int SettleBlocks(int n) { return (n + kSettleRows - 1) / kSettleRows; }
// Blocks of a grid whose warps take tiles_per_warp tiles of 32 rows each.
int ScreenBlocks(int n, int tiles_per_warp) {
  return (PaddedRows(n) / kTileRows + kWarps * tiles_per_warp - 1) / (kWarps * tiles_per_warp);
}
// The workspace of m rows: every row's bound ([m, n] floats), then on a 256-byte boundary each x row's Parts
// (the screen's blocks', then for the int4 copy SettleKernel's); past what four rows take, the int4 screen's
// published logits (Params::threshold), which no call of any row count overwrites.
size_t PartsOffset(int m, int n) { return (static_cast<size_t>(m) * n * sizeof(float) + 255) / 256 * 256; }
size_t ThresholdOffset(int n) {
  const size_t parts = static_cast<size_t>(kMaxRows) * (ScreenBlocks(n, 1) + SettleBlocks(n));
  return (PartsOffset(kMaxRows, n) + parts * sizeof(Part) + 255) / 256 * 256;
}
constexpr int kThresholdWords = kMaxRows + 1;  // a published logit an x row, then DOZE_SCREEN4_PROBE's count

// A float's bits as an unsigned integer of the same order (atomicMax on floats of either sign).
__device__ __forceinline__ unsigned OrderedBits(float v) {
  const unsigned bits = __float_as_uint(v);
  return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}
__device__ __forceinline__ float FromOrderedBits(unsigned u) {
  return __uint_as_float((u & 0x80000000u) != 0 ? u & 0x7fffffffu : ~u);
}

// x . w_r in fp32 over k (a multiple of 8) for kCount rows, by one warp: lane l sums pieces l, l + 32, ... in
// order, then the lanes' sums meet by a butterfly; every lane returns the same values, the same for every
// caller and every kCount. A lane's next four pieces of every row are loaded before their products (where k
// is at most 1,024, one round trip to memory for all the rows).
template <int kCount>
__device__ __forceinline__ void ExactLogits(const __nv_bfloat16* x, const __nv_bfloat16* const (&w)[kCount],
                                            int k, int lane, float (&out)[kCount]) {
  constexpr int kPieces = 4;
  const int pieces = k / 8;
  float sum[kCount] = {};
  for (int base = lane; base < pieces; base += 32 * kPieces) {
    Bf16x8 xv[kPieces], wv[kCount][kPieces];
#pragma unroll
    for (int i = 0; i < kPieces; ++i) {
      const int piece = base + 32 * i;
      xv[i] = LoadVecOrZero(reinterpret_cast<const Bf16x8*>(x + 8 * piece), piece < pieces);
#pragma unroll
      for (int r = 0; r < kCount; ++r)
        wv[r][i] = LoadVecOrZero(reinterpret_cast<const Bf16x8*>(w[r] + 8 * piece), piece < pieces);
    }
#pragma unroll
    for (int i = 0; i < kPieces; ++i) {
      if (base + 32 * i >= pieces) break;
      float a[8];
      Bf16x8ToFloat(xv[i], a);
#pragma unroll
      for (int r = 0; r < kCount; ++r) {
        float b[8];
        Bf16x8ToFloat(wv[r][i], b);
#pragma unroll
        for (int e = 0; e < 8; ++e) sum[r] = fmaf(a[e], b[e], sum[r]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kCount; ++r) out[r] = WarpSum(sum[r]);
}

__device__ __forceinline__ float ExactLogit(const __nv_bfloat16* x, const __nv_bfloat16* w, int k, int lane) {
  const __nv_bfloat16* rows[1] = {w};
  float out[1];
  ExactLogits<1>(x, rows, k, lane, out);
  return out[0];
}

struct Params {
  const __nv_bfloat16* x;  // [m, k]: the rows (norm.out with norm.residual, written by block 0)
  const __nv_bfloat16* w;  // [n, k]
  ScreenNorm norm;
  Screen screen;
  float* upper;         // [m, n]: every row's bound
  Part* parts;          // [m, parts_stride]: the screen's blocks' first
  unsigned* threshold;  // [kThresholdWords]: each x row's best exact logit so far in the int4 screen
                        // (OrderedBits), 0 between calls; then, with DOZE_SCREEN4_PROBE=1 (measurements),
                        // the rows SettleKernel evaluated
  int m, n, k;
  int parts_stride;  // Parts an x row: the screen's blocks and, for the int4 copy, SettleKernel's
  int tiles_per_warp;
};

// x's statistics for one row, shared by the block.
struct XStats {
  float step;          // t: x~ = t p
  float norm;          // ||x||, rounded up
  float error;         // ||x - x~||, rounded up
  int32_t offset_sum;  // the copy's offset times sum(p): what the stored weights' sum has beyond sum(p q)
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
template <int kRows, int kBits>
__device__ __forceinline__ void QuantizeX(const Params& p, const __nv_bfloat16* x, int16_t* xs,
                                          XStats* stats) {
  constexpr ScreenFormat kFormat = ScreenFormatOf(kBits);
  __shared__ float partial[kRows][kWarps][2];
  __shared__ int32_t level_sums[kRows][kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, limit = ScreenXQuantMax(p.k, kFormat);
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
    int32_t level_sum = 0;
    for (int e = threadIdx.x; e < p.k; e += kThreads) {
      const float v = j < p.m ? __bfloat162float(x[static_cast<size_t>(j) * p.k + e]) : 0.f;
      const int level = ScreenQuantize(v, inv, limit);
      xs[j * p.k + e] = static_cast<int16_t>(level);
      level_sum += level;
    }
    if constexpr (kFormat.offset != 0) {
#pragma unroll
      for (int offset = 16; offset > 0; offset >>= 1)
        level_sum += __shfl_xor_sync(0xffffffffu, level_sum, offset);
      if (lane == 0) level_sums[j][warp] = level_sum;
    }
    if (threadIdx.x == 0) {
      const float step = ScreenScale(max_abs, limit);
      stats[j] = XStats{step, ScreenXNorm(sum_sq, p.k), ScreenXError(step, p.k), 0};
    }
  }
  __syncthreads();
  if constexpr (kFormat.offset != 0) {
    if (threadIdx.x < kRows) {
      int32_t total = 0;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) total += level_sums[threadIdx.x][w];
      stats[threadIdx.x].offset_sum = kFormat.offset * total;
    }
    __syncthreads();
  }
}

// acc[j] += x_j's integers of piece c (shared memory, a broadcast) times the lane's stored weights: 16 int8
// or 32 int4, the int4 words' nibbles first split into words of bytes (NibbleOf's order makes them four
// consecutive weights each), so that every word of bytes meets two pairs of x's 16-bit integers in dp2a.
template <int kRows, int kBits>
__device__ __forceinline__ void DotPiece(const int16_t* xs, int k, int c, const uint4& w,
                                         int32_t (&acc)[kRows]) {
  constexpr int kWeights = PieceWeights(kBits);
  int bytes[kWeights / 4];
  if constexpr (kBits == 8) {
    bytes[0] = static_cast<int>(w.x), bytes[1] = static_cast<int>(w.y);
    bytes[2] = static_cast<int>(w.z), bytes[3] = static_cast<int>(w.w);
  } else {
    const uint32_t words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
    for (int h = 0; h < 4; ++h) {
      bytes[2 * h] = static_cast<int>(words[h] & 0x0f0f0f0fu);
      bytes[2 * h + 1] = static_cast<int>((words[h] >> 4) & 0x0f0f0f0fu);
    }
  }
#pragma unroll
  for (int j = 0; j < kRows; ++j) {
    const int4* xr = reinterpret_cast<const int4*>(xs + j * k + c * kWeights);
    int32_t s = acc[j];
#pragma unroll
    for (int q = 0; q < kWeights / 8; ++q) {
      const int4 a = xr[q];
      s = __dp2a_lo(a.x, bytes[2 * q], s);
      s = __dp2a_hi(a.y, bytes[2 * q], s);
      s = __dp2a_lo(a.z, bytes[2 * q + 1], s);
      s = __dp2a_hi(a.w, bytes[2 * q + 1], s);
    }
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

// Where a warp's tiles are: tile t of warp w is tile (block * tiles_per_warp + t) * 4 + w.
struct WarpTiles {
  int block, warp, per_warp;
  __device__ int operator()(int t) const { return (block * per_warp + t) * kWarps + warp; }
};

// The block's end: warp j evaluates x row j's chosen row exactly and writes the block's Part for that row,
// with `others[j]` the largest bound of the rows the block leaves unevaluated (the int8 copy: its other rows;
// the int4 copy: none, SettleKernel checks them all). With `publish` (the int4 copy, whose bound is too loose
// for one exact row a block to settle the token) the logit also goes into p.threshold[j], which keeps the
// largest any block has published, an exact logit of some row, for SettleKernel.
template <int kRows>
__device__ __forceinline__ void EndWithChosenRows(const Params& p, const __nv_bfloat16* x,
                                                  const XStats* stats, const Best (&chosen)[kRows],
                                                  const float (&others)[kRows], bool publish) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int j = 0; j < kRows; ++j) {
    if (warp != j || j >= p.m) continue;
    const int index = chosen[j].index;
    const bool valid = index >= 0 && index < p.n;
    const float value = valid ? ExactLogit(x + static_cast<size_t>(j) * p.k,
                                           p.w + static_cast<size_t>(index) * p.k, p.k, lane)
                              : -INFINITY;
    if (lane != 0) continue;
    if (publish && isfinite(value)) atomicMax(p.threshold + j, OrderedBits(value));
    // x not finite: no bound holds, every row is evaluated by the final kernel.
    const float upper = isfinite(stats[j].norm) ? others[j] : INFINITY;
    p.parts[static_cast<size_t>(j) * p.parts_stride + blockIdx.x] = Part{value, index, upper};
  }
}

// Each warp screens tiles_per_warp tiles of 32 vocabulary rows (a lane a row, its row's copy of kBits
// kInFlight loads at a time, the first before the wait); the block then evaluates exactly its best row per x
// row and keeps its other rows' largest bound (the int8 copy), or publishes its best row's exact logit for
// SettleKernel (the int4 copy, one x row).
template <int kRows, int kBits>
static __global__ void __launch_bounds__(kThreads, kRows == 1   ? 9
                                                   : kRows == 2 ? 8
                                                                : 4) ScreenKernel(Params p) {
  extern __shared__ __align__(16) int16_t xs[];  // [kRows][k], then with p.norm x's rows [kRows][k] in bf16
  __shared__ XStats stats[kRows];
  __shared__ Best warp_best[kRows][kWarps];
  __shared__ float warp_upper[kRows][kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, pieces = p.k / PieceWeights(kBits);
  const WarpTiles tile_of{static_cast<int>(blockIdx.x), warp, p.tiles_per_warp};
  int my_tiles = 0;
  while (my_tiles < p.tiles_per_warp && tile_of(my_tiles) * kTileRows < p.n) ++my_tiles;
  // Piece q of the warp's sequence: tile q / pieces, piece q % pieces.
  const auto piece = [&](int q) {
    const int t = q / pieces;
    return p.screen.q + (static_cast<size_t>(tile_of(t)) * pieces + (q - t * pieces)) * kTileRows + lane;
  };
  const int total = my_tiles * pieces;
  uint4 wv[kInFlight];
#pragma unroll
  for (int i = 0; i < kInFlight; ++i) wv[i] = i < total ? __ldcs(piece(i)) : make_uint4(0, 0, 0, 0);
  RowFactors factors = LoadRowFactors(p.screen, tile_of(0) * kTileRows + lane, p.n);
  GridDependencyWait();
  LaunchDependents();
  const __nv_bfloat16* x = NormalizeX<kRows>(p, reinterpret_cast<__nv_bfloat16*>(xs + kRows * p.k));
  QuantizeX<kRows, kBits>(p, x, xs, stats);

  int32_t acc[kRows] = {};
  LaneRows mine[kRows];
  for (int q0 = 0, c0 = 0, t = 0; q0 < total; q0 += kInFlight) {
#pragma unroll
    for (int i = 0; i < kInFlight; ++i) {
      const uint4 w = wv[i];
      const int next = q0 + i + kInFlight;
      if (next < total) wv[i] = __ldcs(piece(next));
      DotPiece<kRows, kBits>(xs, p.k, c0 + i, w, acc);
    }
    c0 += kInFlight;
    if (c0 < pieces) continue;
    const int row = tile_of(t) * kTileRows + lane;  // tile t is done
#pragma unroll
    for (int j = 0; j < kRows; ++j) {
      const float approx = ScreenApproxLogit(stats[j].step, factors.scale, acc[j] - stats[j].offset_sum);
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
  }
  float others[kRows];
#pragma unroll
  for (int j = 0; j < kRows; ++j) others[j] = -INFINITY;
  if constexpr (kBits == 8) {
#pragma unroll
    for (int j = 0; j < kRows; ++j) {
      const bool holds_chosen = mine[j].best.index == chosen[j].index;
      const float other =
          WarpMax(holds_chosen ? mine[j].other_upper : fmaxf(mine[j].best_upper, mine[j].other_upper));
      if (lane == 0) warp_upper[j][warp] = other;
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kRows; ++j) {
#pragma unroll
      for (int w = 0; w < kWarps; ++w) others[j] = fmaxf(others[j], warp_upper[j][w]);
    }
  }
  EndWithChosenRows<kRows>(p, x, stats, chosen, others, /*publish=*/kBits == 4);
}

// After the int4 screen, for x row blockIdx.y: every row whose bound reaches the largest published exact
// logit E (or is NaN) is evaluated exactly. Each warp checks kSettleRowsPerWarp rows and lists the block's
// candidates in shared memory; the warps then take them kSettleAtOnce at a time (their loads in flight
// together), so that a block waits for about one round trip to memory whatever its own warps' share. The
// block's Part holds its best and the largest bound of the rows it left out (all below E, so below the final
// best: the final kernel's second pass stays for what no bound covers).
static __global__ void __launch_bounds__(kSettleThreads)
    SettleKernel(const float* __restrict__ upper,      // [m, n]
                 const __nv_bfloat16* __restrict__ x,  // [m, k]
                 const __nv_bfloat16* __restrict__ w,  // [n, k]
                 unsigned* __restrict__ threshold,  // [kThresholdWords]; the last counts exact rows (probe)
                 Part* __restrict__ parts,  // [m, parts_stride]: this kernel's from parts + first_part
                 int parts_stride, int first_part, int n, int k, int probe) {
  __shared__ int candidates[kSettleRows];
  __shared__ int listed;
  __shared__ Best warp_best[kSettleThreads / 32];
  __shared__ float warp_upper[kSettleThreads / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (threadIdx.x == 0) listed = 0;
  __syncthreads();
  GridDependencyWait();
  LaunchDependents();
  const int j = blockIdx.y;
  upper += static_cast<size_t>(j) * n;
  x += static_cast<size_t>(j) * k;
  // Nothing published (no finite logit, as where x is not finite): the final kernel evaluates every row.
  const float reach = FromOrderedBits(threshold[j]);
  const bool none = !(reach == reach);
  const int first = (blockIdx.x * (kSettleThreads / 32) + warp) * kSettleRowsPerWarp;
  float others = -INFINITY;
  for (int base = first; base < first + kSettleRowsPerWarp && base < n; base += 32) {
    const int row = base + lane;
    const float u = row < n ? upper[row] : -INFINITY;
    const bool candidate = !none && row < n && !(u < reach);
    if (!candidate) others = none ? INFINITY : fmaxf(others, u);
    const unsigned mask = __ballot_sync(0xffffffffu, candidate);
    if (mask == 0) continue;
    int slot = 0;
    if (lane == 0) slot = atomicAdd(&listed, __popc(mask));
    slot = __shfl_sync(0xffffffffu, slot, 0) + __popc(mask & ((1u << lane) - 1));
    if (candidate) candidates[slot] = row;
  }
  __syncthreads();
  const int total = listed;
  if (probe == 1 && threadIdx.x == 0) atomicAdd(threshold + kMaxRows, total);
  Best best = NoBest();
  for (int c = warp * kSettleAtOnce; c < total; c += kSettleThreads / 32 * kSettleAtOnce) {
    int rows[kSettleAtOnce];
    const __nv_bfloat16* weights[kSettleAtOnce];
#pragma unroll
    for (int r = 0; r < kSettleAtOnce; ++r) {
      rows[r] = candidates[c + r < total ? c + r : c];
      weights[r] = w + static_cast<size_t>(rows[r]) * k;
    }
    float values[kSettleAtOnce];
    ExactLogits<kSettleAtOnce>(x, weights, k, lane, values);
#pragma unroll
    for (int r = 0; r < kSettleAtOnce; ++r) best = Better(best, Best{values[r], rows[r]});
  }
  best = WarpArgmax(best);
  others = WarpMax(others);
  if (lane == 0) {
    warp_best[warp] = best;
    warp_upper[warp] = others;
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
#pragma unroll
  for (int v = 1; v < kSettleThreads / 32; ++v) {
    best = Better(best, warp_best[v]);
    others = fmaxf(others, warp_upper[v]);
  }
  parts[static_cast<size_t>(j) * parts_stride + first_part + blockIdx.x] =
      Part{best.value, best.index, others};
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

// x row blockIdx.x's token: the best of the blocks' exact logits (the screen's, then for the int4 copy the
// settling kernel's), unless some row a block did not evaluate may reach it; then every row whose bound
// reaches it (or is NaN), evaluated exactly by the block's warps. A row of x that is not finite leaves no
// bound meaning anything (ScreenKernel's parts then say +inf): every row is evaluated, and the token is the
// bf16 pass's (TokenOf).
static __global__ void __launch_bounds__(kFinalThreads)
    ScreenFinalKernel(const Part* __restrict__ parts,  // [m, num_parts]
                      int num_parts,
                      const float* __restrict__ upper,  // [m, n]
                      const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                      int32_t* __restrict__ tokens,      // [m]
                      unsigned* __restrict__ threshold,  // [kThresholdWords]: reset for the next call
                      int n, int k, int probe) {
  GridDependencyWait();
  LaunchDependents();
  if (threadIdx.x == 0) threshold[blockIdx.x] = 0;  // 0: none published
  if (blockIdx.x == 0 && threadIdx.x == 0 && probe == 1) {
    printf("screen4 exact rows %u\n", threshold[kMaxRows]);
    threshold[kMaxRows] = 0;
  }
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
// (a second wave would leave a tail of blocks streaming alone), `later_parts` Parts an x row left after its
// blocks' (SettleKernel's); returns the grid's blocks.
// Registers, not x's few KB of shared memory, bound the blocks a multiprocessor holds: the count is taken
// once.
template <int kRows, int kBits>
int LaunchScreen(Params p, int later_parts, cudaStream_t stream) {
  const size_t shared = static_cast<size_t>(kRows) * p.k * (sizeof(int16_t) + sizeof(__nv_bfloat16));
  static const int resident = [shared] {
    int per_multiprocessor = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_multiprocessor, ScreenKernel<kRows, kBits>,
                                                             kThreads, shared));
    return std::max(per_multiprocessor, 1) * MultiprocessorCount();
  }();
  const int tiles = PaddedRows(p.n) / kTileRows;
  p.tiles_per_warp = std::max(1, (tiles + kWarps * resident - 1) / (kWarps * resident));
  const int blocks = ScreenBlocks(p.n, p.tiles_per_warp);
  p.parts_stride = blocks + later_parts;
  LaunchWithPdl(ScreenKernel<kRows, kBits>, dim3(blocks), dim3(kThreads), shared, stream, p);
  return blocks;
}

}  // namespace

bool LmHeadScreenSupportsShape(int n, int k) { return n >= 1 && k >= 64 && k % 64 == 0 && k <= kMaxK; }

bool LmHeadScreenPreferred(int m, int n, int k) {
  static const bool enabled = EnvFlag("DOZE_LM_HEAD_SCREEN");
  return enabled && m >= 1 && m <= kMaxRows && LmHeadScreenSupportsShape(n, k);
}

bool LmHeadScreen4Fits(int k) { return k % (PieceWeights(4) * kInFlight) == 0; }

int LmHeadScreenDefaultBits(int k) {
  static const bool int4_enabled = EnvFlag("DOZE_LM_HEAD_SCREEN4");
  return int4_enabled && LmHeadScreen4Fits(k) ? 4 : 8;
}

size_t LmHeadScreenWorkspaceBytes(int n) { return ThresholdOffset(n) + kThresholdWords * sizeof(unsigned); }

bool LmHeadScreenNormFits(int k) { return k <= kAddRmsNormThreads * 8; }

void LmHeadScreenedArgmax(const __nv_bfloat16* x, const __nv_bfloat16* w, const void* screen, int bits,
                          int32_t* tokens, int m, int n, int k, void* workspace, cudaStream_t stream,
                          const ScreenNorm& norm) {
  if (m == 0) return;
  if (m < 0 || m > kMaxRows || !LmHeadScreenSupportsShape(n, k)) {
    CudaFail("LmHeadScreenedArgmax", "needs 1 <= m <= 4 and k a multiple of 64, at most 4,096", __FILE__,
             __LINE__);
  }
  if (norm.residual != nullptr && (!LmHeadScreenNormFits(k) || norm.out == nullptr))
    CudaFail("LmHeadScreenedArgmax", "the norm takes k of at most 1,024 and an output", __FILE__, __LINE__);
  if ((bits != 4 && bits != 8) || (bits == 4 && !LmHeadScreen4Fits(k)))
    CudaFail("LmHeadScreenedArgmax", "the int4 copy takes k a multiple of 128", __FILE__, __LINE__);
  const __nv_bfloat16* rows = norm.residual != nullptr ? norm.out : x;
  char* bytes = static_cast<char*>(workspace);
  float* upper = reinterpret_cast<float*>(bytes);
  Part* parts = reinterpret_cast<Part*>(bytes + PartsOffset(m, n));
  unsigned* threshold = reinterpret_cast<unsigned*>(bytes + ThresholdOffset(n));
  static const int probe = EnvInt("DOZE_SCREEN4_PROBE", 0);
  const Params p{rows, w, norm, ScreenAt(screen, n, k, bits), upper, parts, threshold, m, n, k, 0, 1};
  const int settle = bits == 4 ? SettleBlocks(n) : 0;
  const int blocks = bits == 4 ? (m == 1   ? LaunchScreen<1, 4>(p, settle, stream)
                                  : m == 2 ? LaunchScreen<2, 4>(p, settle, stream)
                                           : LaunchScreen<4, 4>(p, settle, stream))
                     : m == 1  ? LaunchScreen<1, 8>(p, 0, stream)
                     : m == 2  ? LaunchScreen<2, 8>(p, 0, stream)
                               : LaunchScreen<4, 8>(p, 0, stream);
  if (bits == 4) {
    LaunchWithPdl(SettleKernel, dim3(settle, m), dim3(kSettleThreads), 0, stream,
                  static_cast<const float*>(upper), rows, w, threshold, parts, blocks + settle, blocks, n, k,
                  probe);
  }
  LaunchWithPdl(ScreenFinalKernel, dim3(m), dim3(kFinalThreads), 0, stream, static_cast<const Part*>(parts),
                blocks + settle, static_cast<const float*>(upper), rows, w, tokens, threshold, n, k, probe);
}

}  // namespace doze::kernels

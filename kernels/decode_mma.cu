#include <cooperative_groups.h>

#include <algorithm>

#include "kernels/async_copy.cuh"
#include "kernels/cuda_check.h"
#include "kernels/decode_epilogue.cuh"
#include "kernels/decode_mma.h"
#include "kernels/decode_tma_swiglu.h"
#include "kernels/device_info.h"
#include "kernels/env_knob.h"
#include "kernels/mma_tile.cuh"
#include "kernels/pdl.cuh"
#include "kernels/rms_norm.cuh"
#include "kernels/rms_norm.h"
#include "kernels/vec.cuh"
#include "kernels/wgmma.cuh"

namespace doze::kernels {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kChunk = 32;                   // k values per 16-byte load of one lane: two m16n8k16 steps
constexpr int kTileRows = 16;                // weight rows of one mma tile
constexpr int kMaxSharedBytes = 120 * 1024;  // x's slice per block
constexpr int kReduceThreads = 256;
constexpr int kReduceNormThreads = 512;
constexpr int kMaxReduceNormSharedBytes = 96 * 1024;

struct Params {
  const __nv_bfloat16* x;     // [m, k]
  const __nv_bfloat16* w;     // [n, k]
  const __nv_bfloat16* bias;  // [n] or nullptr (kRotary)
  __nv_bfloat16* out;         // kStore: [m, n]; kSwiGlu: [m, n / 2]; kRotary: unused
  RotaryCacheOutput rotary;   // kRotary only
  RotaryShape shape;          // kRotary only
  float* partials;            // [ksplit, m, n] when k splits end in the reduce kernel
  int m, n, k, num_items;
  int ksplit, chunks_per_split;
  int x_stride;         // 16-byte vectors between rows of x's slice in shared memory
  bool wgmma;           // the pipelined kernel's products on warpgroup instructions (where compiled)
  bool cluster_reduce;  // the pipelined kernel's k splits are a cluster and add their sums there
  bool prepare_units;   // ... and read their epilogue constants before the wait (PrepareClusterUnits)
  int launch_tile;      // pipelined: the k-tile at which a block lets the next kernel launch (0: at the wait)
  int early_stages;     // pipelined: weight stages a block asks for before its wait (at most all but one)
};

// Lane (g, c) loads k values [8c, 8c + 8) of a chunk of weight rows g and g + 8 of each tile. The products
// permute k the same way for both operands: step s of the chunk takes values 8c + 4s + {0, 1} as the
// fragments' k = 2c + {0, 1} and 8c + 4s + {2, 3} as k = 2c + 8 + {0, 1}.
template <int kCols>
__device__ __forceinline__ void LoadChunk(uint4 (&dst)[kCols][2],
                                          const __nv_bfloat16* const (&rows)[kCols][2], int chunk,
                                          bool valid) {
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      dst[c][h] =
          valid ? *reinterpret_cast<const uint4*>(rows[c][h] + chunk * kChunk) : make_uint4(0, 0, 0, 0);
    }
  }
}

// Copies rows [0, kNTiles * 8) of x's k-range [c_begin, c_end) chunks into shared memory, zero past row m.
template <int kNTiles>
__device__ __forceinline__ void StageX(const Params& p, uint4* xs, int c_begin, int c_end) {
  const int vecs = (c_end - c_begin) * (kChunk / 8);
  const uint4* x = reinterpret_cast<const uint4*>(p.x);
  const int row_vecs = p.k / 8;
  for (int e = threadIdx.x; e < kNTiles * 8 * vecs; e += kThreads) {
    const int r = e / vecs, v = e - r * vecs;
    xs[r * p.x_stride + v] =
        r < p.m ? x[static_cast<int64_t>(r) * row_vecs + c_begin * (kChunk / 8) + v] : make_uint4(0, 0, 0, 0);
  }
}

// acc[c][j] += the chunk's products of tile c's rows with x rows 8j + [0, 8).
template <int kNTiles, int kCols>
__device__ __forceinline__ void MmaChunk(const uint4* xs, int x_stride, int local_chunk,
                                         const uint4 (&w)[kCols][2], float (&acc)[kCols][kNTiles][4]) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int j = 0; j < kNTiles; ++j) {
    const uint4 b = xs[(8 * j + g) * x_stride + local_chunk * (kChunk / 8) + t];
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      Mma(acc[c][j], w[c][0].x, w[c][1].x, w[c][0].y, w[c][1].y, b.x, b.y);
      Mma(acc[c][j], w[c][0].z, w[c][1].z, w[c][0].w, w[c][1].w, b.z, b.w);
    }
  }
}

// The epilogue of one item of row r from its fp32 sums.
template <Epilogue E>
__device__ __forceinline__ void Finish(const Params& p, int r, int item, int2 cols, const float (&sum)[2]) {
  if constexpr (E == Epilogue::kStore) {
    p.out[static_cast<int64_t>(r) * p.n + cols.x] = __float2bfloat16(sum[0]);
  } else if constexpr (E == Epilogue::kSwiGlu) {
    p.out[static_cast<int64_t>(r) * p.num_items + item] = __float2bfloat16(SwiGlu(sum[0], sum[1]));
  } else {
    StoreRotaryPair(p.rotary, p.shape, p.n, r, item, cols, sum[0], sum[1],
                    ReadRotaryInputs(p.rotary, p.shape, p.bias, item, cols, r));
  }
}

// Calls f(row, offset, value index) for each accumulator of a lane: tile rows `offset` = g and g + 8, x rows
// 8j + 2t + {0, 1}; rows at or past m skipped.
template <int kNTiles, typename F>
__device__ __forceinline__ void ForEachOutput(int m, F&& f) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int j = 0; j < kNTiles; ++j) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = 8 * j + 2 * t + h;
      if (row >= m) continue;
#pragma unroll
      for (int half = 0; half < 2; ++half) f(row, g + 8 * half, j, 2 * half + h);
    }
  }
}

// Without a k split: the warp's sums are complete, the epilogue runs from registers.
template <int kNTiles, int kCols, Epilogue E>
__device__ __forceinline__ void FinishWarp(const Params& p, int item_base,
                                           const float (&acc)[kCols][kNTiles][4]) {
  ForEachOutput<kNTiles>(p.m, [&](int row, int offset, int j, int v) {
    const int item = item_base + offset;
    const float sum[2] = {acc[0][j][v], acc[kCols - 1][j][v]};
    Finish<E>(p, row, item, ItemColumns<E>(item, p.num_items, p.shape.head_dim), sum);
  });
}

// With a k split: stores the warp's sums of this block's k-range in partials[split][row][col].
template <int kNTiles, int kCols>
__device__ __forceinline__ void WritePartials(const Params& p, int2 base,
                                              const float (&acc)[kCols][kNTiles][4]) {
  float* out = p.partials + static_cast<int64_t>(blockIdx.y) * p.m * p.n;
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    const int col = c == 0 ? base.x : base.y;
    ForEachOutput<kNTiles>(p.m, [&](int row, int offset, int j, int v) {
      __stcg(out + static_cast<int64_t>(row) * p.n + col + offset, acc[c][j][v]);
    });
  }
}

// Block (group, split): warp w takes the 16 items from (group * kWarps + w) * 16 over the split's k-range.
template <int kNTiles, Epilogue E>
static __global__ void __launch_bounds__(kThreads) DecodeMmaKernel(Params p) {
  constexpr int kCols = E == Epilogue::kStore ? 1 : 2;
  constexpr int kStages = kCols == 1 ? 8 : 4;  // weight chunks in flight per warp: 8 KB either way
  extern __shared__ uint4 xs[];                // [kNTiles * 8, x_stride]: x's rows over this block's k-range
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int c_begin = blockIdx.y * p.chunks_per_split;
  const int c_end = min(p.k / kChunk, c_begin + p.chunks_per_split);
  const int item_base = (blockIdx.x * kWarps + warp) * kTileRows;
  const bool active = item_base < p.num_items;
  const int2 base = ItemColumns<E>(active ? item_base : 0, p.num_items, p.shape.head_dim);
  const __nv_bfloat16* rows[kCols][2];
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    rows[c][0] = p.w + static_cast<int64_t>((c == 0 ? base.x : base.y) + g) * p.k + 8 * t;
    rows[c][1] = rows[c][0] + 8 * static_cast<int64_t>(p.k);
  }
  uint4 w[kStages][kCols][2];
#pragma unroll
  for (int s = 0; s < kStages; ++s) LoadChunk<kCols>(w[s], rows, c_begin + s, active && c_begin + s < c_end);
  GridDependencyWait();  // weights are constant; x is the previous kernel's output
  LaunchDependents();
  StageX<kNTiles>(p, xs, c_begin, c_end);
  __syncthreads();

  float acc[kCols][kNTiles][4] = {};
  for (int c0 = c_begin; c0 < c_end; c0 += kStages) {
#pragma unroll
    for (int s = 0; s < kStages; ++s) {
      const int c = c0 + s;
      if (c >= c_end) break;
      MmaChunk<kNTiles, kCols>(xs, p.x_stride, c - c_begin, w[s], acc);
      LoadChunk<kCols>(w[s], rows, c + kStages, active && c + kStages < c_end);
    }
  }
  if (!active) return;
  if (p.ksplit == 1) {
    FinishWarp<kNTiles, kCols, E>(p, item_base, acc);
  } else {
    WritePartials<kNTiles, kCols>(p, base, acc);
  }
}

// The pipelined kernel (from PipelineMinRows rows): a block of eight warps, one per 16-row mma tile, owns 128
// weight rows (128 outputs, or 64 items of a paired epilogue) and every row of x; 64-wide k-tiles of both
// stream through kPipeStages stages of shared memory with cp.async, so each block keeps several tiles of
// weights in flight without holding them in registers. The tensor cores read the swizzled tiles with
// wgmma, two warpgroups of 64 weight rows each (sm_90a builds), or through ldmatrix and mma.sync. 128 rows
// rather than 64 halve the x tiles every block copies (at 64 rows as many bytes as the weights): on the
// H100 with wgmma, gate/up at 64 rows 12.4 -> 12.0 us, down 9.2 -> 8.2 (kernels/PERF_NOTES.md).
constexpr int kPipeWeightRows = 128;  // eight 16-row mma tiles, one a warp
// Stages of a block with kNTiles 8-row tiles of x. Deep: 10, 8 or 6 (180, 160 or 144 KB, one block a
// multiprocessor), the most weight bytes in flight; otherwise six, whose smaller blocks leave room for the
// next kernel's to start early. Taken for blocks that stream their rows over all of k (no split) and for
// every projection at 17-32 rows (chosen with 64-row blocks: on the H100 the k-split projections lost with
// deep stages at 16 rows, batch 16 step +0.8%, and won at 32, -1.5%; kernels/PERF_NOTES.md).
// Lean: four (96 KB at 64 rows), for k splits of at most five tiles from UseLeanRing's rows (down_proj after
// DecodeTmaSwiGlu: measured faster there than six, for a reason not pinned down; kernels/PERF_NOTES.md).
enum Ring { kShallowRing, kDeepRing, kLeanRing };
template <int kNTiles, int kRing>
constexpr int kPipeStages = kRing == kLeanRing      ? 4
                            : kRing == kShallowRing ? 6
                            : kNTiles <= 2          ? 10
                            : kNTiles <= 4          ? 8
                                                    : 6;
constexpr int kPipeTileBytes = kPipeWeightRows * kPipeK * 2;
constexpr int kPipeThreads = kPipeWeightRows / 16 * 32;

// Items a pipelined block covers: one per weight row (kStore), or two weight rows per item.
__host__ __device__ constexpr int PipeItems(Epilogue e) {
  return e == Epilogue::kStore ? kPipeWeightRows : kPipeWeightRows / 2;
}

// The weight row behind row r of a block's tile, or -1 past the last item. Paired epilogues lay each 16-row
// mma tile out as 8 items' first columns, then the same 8 items' second columns, so that a lane's
// accumulators for rows g and g + 8 are one item's pair.
template <Epilogue E>
__device__ __forceinline__ int PipeWeightRow(const Params& p, int r) {
  if constexpr (E == Epilogue::kStore) {
    const int col = blockIdx.x * kPipeWeightRows + r;
    return col < p.n ? col : -1;
  } else {
    const int item = blockIdx.x * PipeItems(E) + (r / 16) * 8 + (r & 7);
    if (item >= p.num_items) return -1;
    const int2 cols = ItemColumns<E>(item, p.num_items, p.shape.head_dim);
    return (r & 8) ? cols.y : cols.x;
  }
}

// A thread's share of every k-tile's copies into a stage: the sources of its 16-byte pieces at k = 0 and
// their places in the stage, worked out once per block (recomputed per tile, the weight rows' item lookups
// and the index arithmetic were most of what the loop issued).
template <int kNTiles, Epilogue E>
class TileCopies {
 public:
  __device__ __forceinline__ explicit TileCopies(const Params& p) : k_(p.k) {
#pragma unroll
    for (int i = 0; i < kWeightPieces; ++i) {
      const int e = threadIdx.x + i * kPipeThreads, row = e >> 3, c = e & 7;
      const int wrow = PipeWeightRow<E>(p, row);
      w_[i] = p.w + static_cast<int64_t>(max(wrow, 0)) * p.k + 8 * c;
      if (wrow >= 0) rows_ |= 1u << i;
      w_offset_[i] = SwizzledOffset(row, c);
    }
#pragma unroll
    for (int i = 0; i < kXPieces; ++i) {
      const int e = threadIdx.x + i * kPipeThreads, row = e >> 3, c = e & 7;
      x_[i] = p.x + static_cast<int64_t>(min(row, p.m - 1)) * p.k + 8 * c;
      if (e < kNTiles * 64 && row < p.m) rows_ |= 1u << (kWeightPieces + i);
      x_offset_[i] = e < kNTiles * 64 ? SwizzledOffset(row, c) : kNoPlace;
    }
    c8_ = 8 * (threadIdx.x & 7);  // every piece of a thread has the same c: kPipeThreads is a multiple of 8
  }

  // The block's weight rows of k-tile `tile` into the stage's weights; zeros past the last item or k.
  __device__ __forceinline__ void Weights(char* w_stage, int tile) const {
    const bool in_k = tile * kPipeK + c8_ < k_;
#pragma unroll
    for (int i = 0; i < kWeightPieces; ++i) {
      const bool valid = (rows_ >> i & 1) && in_k;
      CopyAsync16<CopyCache::kL2Only>(w_stage + w_offset_[i], w_[i] + (valid ? tile * kPipeK : 0), valid);
    }
  }

  // x's rows [0, kNTiles * 8) of k-tile `tile` into the stage's x; zeros past row m or k.
  __device__ __forceinline__ void X(char* x_stage, int tile) const {
    const bool in_k = tile * kPipeK + c8_ < k_;
#pragma unroll
    for (int i = 0; i < kXPieces; ++i) {
      if (x_offset_[i] == kNoPlace) continue;
      const bool valid = (rows_ >> (kWeightPieces + i) & 1) && in_k;
      CopyAsync16<CopyCache::kL2Only>(x_stage + x_offset_[i], x_[i] + (valid ? tile * kPipeK : 0), valid);
    }
  }

 private:
  static constexpr int kWeightPieces = kPipeWeightRows * 8 / kPipeThreads;
  static constexpr int kXPieces = (kNTiles * 64 + kPipeThreads - 1) / kPipeThreads;
  static constexpr uint32_t kNoPlace = ~0u;
  const __nv_bfloat16* w_[kWeightPieces];  // a row past the last item: a row that is (copies nothing)
  uint32_t w_offset_[kWeightPieces];
  const __nv_bfloat16* x_[kXPieces];  // a row past m: row m - 1 (copies nothing)
  uint32_t x_offset_[kXPieces];       // kNoPlace: no piece for this thread
  uint32_t rows_ = 0;  // bit i: weight piece i's row exists; bit kWeightPieces + i: x piece i's
  int k_, c8_;
};

// A unit of warp `warp`'s sums is x row 8j + 2t + h against the warp's tile rows g (v0) and g + 8 (v1), lane
// = 4g + t: two output columns for kStore, one item's pair for the paired epilogues. Sets the unit's row and
// first column (kStore) or item; false when the row is at or past m or the column or item past the end.
template <Epilogue E>
__device__ __forceinline__ bool PipeUnit(const Params& p, int warp, int lane, int j, int h, int& row,
                                         int& index) {
  row = 8 * j + 2 * (lane & 3) + h;
  if constexpr (E == Epilogue::kStore) {
    index = blockIdx.x * kPipeWeightRows + 16 * warp + (lane >> 2);
    return row < p.m && index < p.n;
  } else {
    index = blockIdx.x * PipeItems(E) + 8 * warp + (lane >> 2);
    return row < p.m && index < p.num_items;
  }
}

// The epilogue of one unit from its complete sums.
template <Epilogue E>
__device__ __forceinline__ void FinishPipeUnit(const Params& p, int warp, int lane, int j, int h, float v0,
                                               float v1) {
  int row, index;
  if (!PipeUnit<E>(p, warp, lane, j, h, row, index)) return;
  if constexpr (E == Epilogue::kStore) {
    __nv_bfloat16* out = p.out + static_cast<int64_t>(row) * p.n;
    out[index] = __float2bfloat16(v0);
    if (index + 8 < p.n) out[index + 8] = __float2bfloat16(v1);
  } else {
    const float sum[2] = {v0, v1};
    Finish<E>(p, row, index, ItemColumns<E>(index, p.num_items, p.shape.head_dim), sum);
  }
}

// One unit's sums of this block's k split into partials[split][row][column], for DecodeMmaReduceKernel.
template <Epilogue E>
__device__ __forceinline__ void StorePipeUnitPartials(const Params& p, int warp, int lane, int j, int h,
                                                      float v0, float v1) {
  int row, index;
  if (!PipeUnit<E>(p, warp, lane, j, h, row, index)) return;
  float* out = p.partials + (static_cast<int64_t>(blockIdx.y) * p.m + row) * p.n;
  if constexpr (E == Epilogue::kStore) {
    __stcg(out + index, v0);
    if (index + 8 < p.n) __stcg(out + index + 8, v1);
  } else {
    const int2 cols = ItemColumns<E>(index, p.num_items, p.shape.head_dim);
    __stcg(out + cols.x, v0);
    __stcg(out + cols.y, v1);
  }
}

// The most k splits added in a cluster (the portable cluster size); more go through the reduce kernel.
constexpr int kMaxClusterBlocks = 8;

// A block of a cluster finishes units rank * share + threadIdx.x + i * kPipeThreads; the first
// kPreparedUnits of a thread have their epilogue constants worked out before the grid dependency wait.
constexpr int kPreparedUnits = 4;

// Unit u's place: u = ((warp * kNTiles + j) * 2 + h) * 32 + lane.
struct UnitPlace {
  int warp, j, h, lane;
};
template <int kNTiles>
__device__ __forceinline__ UnitPlace PlaceOfUnit(int u) {
  return {(u >> 6) / kNTiles, (u >> 6) % kNTiles, (u >> 5) & 1, u & 31};
}

// Units [begin, end) of this block's share in the cluster's reduction.
template <int kNTiles>
__device__ __forceinline__ int2 ClusterShare(int splits, int rank) {
  constexpr int kUnits = kPipeThreads / 32 * kNTiles * 2 * 32;
  const int share = (kUnits + splits - 1) / splits;
  return {rank * share, min(kUnits, (rank + 1) * share)};
}

// The RotaryInputs of unit u (kRotary; none for a unit past m or the last item).
template <Epilogue E>
__device__ __forceinline__ RotaryInputs PrepareUnit(const Params& p, const UnitPlace& u) {
  int row, item;
  if (!PipeUnit<E>(p, u.warp, u.lane, u.j, u.h, row, item)) return {};
  return ReadRotaryInputs(p.rotary, p.shape, p.bias, item,
                          ItemColumns<E>(item, p.num_items, p.shape.head_dim), row);
}

// This thread's first kPreparedUnits units of its block's share in the cluster's reduction (kRotary only).
template <int kNTiles, Epilogue E>
__device__ __forceinline__ void PrepareClusterUnits(const Params& p,
                                                    RotaryInputs (&prepared)[kPreparedUnits]) {
  if constexpr (E == Epilogue::kRotary) {
    const int2 share = ClusterShare<kNTiles>(p.ksplit, blockIdx.y);
#pragma unroll
    for (int i = 0; i < kPreparedUnits; ++i) {
      const int u = share.x + threadIdx.x + i * kPipeThreads;
      if (u < share.y) prepared[i] = PrepareUnit<E>(p, PlaceOfUnit<kNTiles>(u));
    }
  }
}

// FinishPipeUnit with the unit's RotaryInputs already read (kRotary; the others read none).
template <Epilogue E>
__device__ __forceinline__ void FinishPreparedUnit(const Params& p, const UnitPlace& u, float v0, float v1,
                                                   const RotaryInputs& in) {
  if constexpr (E == Epilogue::kRotary) {
    int row, item;
    if (!PipeUnit<E>(p, u.warp, u.lane, u.j, u.h, row, item)) return;
    StoreRotaryPair(p.rotary, p.shape, p.n, row, item, ItemColumns<E>(item, p.num_items, p.shape.head_dim),
                    v0, v1, in);
  } else {
    FinishPipeUnit<E>(p, u.warp, u.lane, u.j, u.h, v0, v1);
  }
}

// The .aligned forms (every thread of the block reaches them together); the toolkit's
// __cluster_barrier_arrive_relaxed and __cluster_barrier_wait emit the unaligned ones.
__device__ __forceinline__ void ClusterArriveRelaxed() {
  asm volatile("barrier.cluster.arrive.relaxed.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void ClusterWait() {
  asm volatile("barrier.cluster.wait.aligned;\n" ::: "memory");
}

// With k split over the blocks of a cluster (blockIdx.y is the rank): every block leaves its sums in its own
// shared memory (`red`, the stages, free once every warp is done with them), then block r adds the splits'
// sums of its share of the units, in split order, reading the others' shared memory, and runs their epilogue.
template <int kNTiles, Epilogue E>
__device__ __forceinline__ void ReduceSplitsInCluster(const Params& p, const float (&acc)[kNTiles][4],
                                                      float* red,
                                                      const RotaryInputs (&prepared)[kPreparedUnits]) {
  constexpr int kValues = kNTiles * 4;  // a lane's sums
  const int lane = threadIdx.x & 31;
  __syncthreads();
  float* mine = red + PipeTile() * kValues * 32;  // [value][lane] a warp
#pragma unroll
  for (int j = 0; j < kNTiles; ++j) {
#pragma unroll
    for (int v = 0; v < 4; ++v) mine[(4 * j + v) * 32 + lane] = acc[j][v];
  }
  cooperative_groups::cluster_group cluster = cooperative_groups::this_cluster();
  cluster.sync();
  const int splits = p.ksplit;
  const int2 share = ClusterShare<kNTiles>(splits, cluster.block_rank());
  for (int i = 0, u = share.x + threadIdx.x; u < share.y; ++i, u += kPipeThreads) {
    const UnitPlace place = PlaceOfUnit<kNTiles>(u);
    const int first = place.warp * kValues * 32 + (4 * place.j + place.h) * 32 + place.lane;
    float a[kMaxClusterBlocks], b[kMaxClusterBlocks];  // every split's pair loaded at once
#pragma unroll
    for (int s = 0; s < kMaxClusterBlocks; ++s) {
      if (s >= splits) break;
      const float* theirs = cluster.map_shared_rank(red, s);
      a[s] = theirs[first];
      b[s] = theirs[first + 2 * 32];
    }
    float v0 = 0.f, v1 = 0.f;
#pragma unroll
    for (int s = 0; s < kMaxClusterBlocks; ++s) {
      if (s >= splits) break;
      v0 += a[s];
      v1 += b[s];
    }
    if (p.prepare_units && i < kPreparedUnits) {
      FinishPreparedUnit<E>(p, place, v0, v1, prepared[i]);
    } else {
      FinishPipeUnit<E>(p, place.warp, place.lane, place.j, place.h, v0, v1);
    }
  }
  // No block leaves while another still reads its shared memory. The reads are done (their sums were
  // stored), so the arrive needs no release: cluster.sync()'s would wait for this block's epilogue stores to
  // reach memory (ncu at 64 rows: 1.2-1.9 cycles of membar stall per instruction).
  ClusterArriveRelaxed();
  ClusterWait();
}

// Block (group, split): the group's weight rows over the split's k-tiles; with cluster_reduce a group's
// splits are one cluster and add their sums there, else each writes partials for the reduce kernel.
// `__launch_bounds__(kPipeThreads, 1)` (one block a multiprocessor is what the stages allow anyway): ptxas
// gives the kernel ~100-110 registers instead of ~75 (kernels/PERF_NOTES.md, eleventh session).
template <int kNTiles, Epilogue E, int kRing>
static __global__ void __launch_bounds__(kPipeThreads, 1) DecodeMmaPipelinedKernel(Params p) {
  constexpr int kXTileBytes = kNTiles * 8 * kPipeK * 2;
  constexpr int kStages = kPipeStages<kNTiles, kRing>;
  extern __shared__ __align__(1024) char smem[];  // [kStages][weights | x], stages on 1,024-byte boundaries
  const uint32_t smem_base = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
#if defined(DOZE_HAVE_WGMMA)
  if (p.wgmma && (smem_base & 1023) != 0) __trap();  // the swizzle atoms need it
#endif
  constexpr int kStageBytes = kPipeTileBytes + kXTileBytes;
  static_assert(kPipeThreads * kNTiles * 4 * sizeof(float) <= kStages * kStageBytes,
                "ReduceSplitsInCluster reuses the stages");
  const int ktiles = (p.k + kPipeK - 1) / kPipeK;
  const int t_begin = blockIdx.y * p.chunks_per_split;
  const int t_count = min(ktiles, t_begin + p.chunks_per_split) - t_begin;
  const TileCopies<kNTiles, E> copies(p);
  // Weights are constant: their first tiles load before the wait on the previous kernel (x is its output),
  // the rest of the prologue's with x's after it.
  const int early = min(p.early_stages, min(kStages - 1, t_count));
  for (int s = 0; s < early; ++s) copies.Weights(smem + s * kStageBytes, t_begin + s);
  CommitAsyncCopies();
  RotaryInputs prepared[kPreparedUnits];
  if (p.cluster_reduce && p.prepare_units) PrepareClusterUnits<kNTiles, E>(p, prepared);
  GridDependencyWait();
  if (p.launch_tile == 0) LaunchDependents();
  for (int s = 0; s < kStages - 1; ++s) {
    if (s >= early && s < t_count) copies.Weights(smem + s * kStageBytes, t_begin + s);
    if (s < t_count) copies.X(smem + s * kStageBytes + kPipeTileBytes, t_begin + s);
    CommitAsyncCopies();
  }
  float acc[kNTiles][4] = {};
#if defined(DOZE_HAVE_WGMMA)
  const uint64_t w_desc = SwizzledTileDescriptor(smem_base + (PipeTile() / 4) * 64 * 128);
  const uint64_t x_desc = SwizzledTileDescriptor(smem_base + kPipeTileBytes);
#endif
  for (int i = 0; i < t_count; ++i) {
    if (i == p.launch_tile && i > 0) LaunchDependents();  // a block with fewer tiles lets it at exit
    WaitAsyncCopies<kStages - 2>();
#if defined(DOZE_HAVE_WGMMA)
    if (p.wgmma) FenceSharedForAsyncProxy();
#endif
    __syncthreads();  // tile i is in; every warp is done with tile i - 1, whose stage the next copies reuse
    const int next = i + kStages - 1;
    if (next < t_count) {
      char* stage = smem + (next % kStages) * kStageBytes;
      copies.Weights(stage, t_begin + next);
      copies.X(stage + kPipeTileBytes, t_begin + next);
    }
    CommitAsyncCopies();
    const int s = i % kStages;
#if defined(DOZE_HAVE_WGMMA)
    if (p.wgmma) {
      const uint32_t stage_units = s * (kStageBytes >> 4);  // the stage's offset in the descriptors' units
      WgmmaTile<kNTiles>(w_desc + stage_units, x_desc + stage_units, acc);
      continue;
    }
#endif
    const uint32_t stage = smem_base + s * kStageBytes;
    MmaTile<kNTiles>(stage, stage + kPipeTileBytes, acc);
  }
  if (p.cluster_reduce)
    return ReduceSplitsInCluster<kNTiles, E>(p, acc, reinterpret_cast<float*>(smem), prepared);
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int j = 0; j < kNTiles; ++j) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      if (p.ksplit == 1) {
        FinishPipeUnit<E>(p, PipeTile(), lane, j, h, acc[j][h], acc[j][2 + h]);
      } else {
        StorePipeUnitPartials<E>(p, PipeTile(), lane, j, h, acc[j][h], acc[j][2 + h]);
      }
    }
  }
}

// After a k split: one thread per (row, item) adds the splits' sums in split order and runs the epilogue.
template <Epilogue E>
static __global__ void __launch_bounds__(kReduceThreads) DecodeMmaReduceKernel(Params p) {
  const int e = blockIdx.x * kReduceThreads + threadIdx.x;
  const int r = e / p.num_items, item = e - r * p.num_items;
  GridDependencyWait();
  LaunchDependents();
  if (r >= p.m) return;
  const int2 cols = ItemColumns<E>(item, p.num_items, p.shape.head_dim);
  float sum[2] = {0.f, 0.f};
  for (int s = 0; s < p.ksplit; ++s) {
    const float* part = p.partials + (static_cast<int64_t>(s) * p.m + r) * p.n;
    sum[0] += __ldcg(part + cols.x);
    if constexpr (E != Epilogue::kStore) sum[1] += __ldcg(part + cols.y);
  }
  Finish<E>(p, r, item, cols, sum);
}

// After a k split of a residual projection: block r copies row r's partial sums into shared memory (every
// piece in flight at once) while its first kAddRmsNormThreads threads load their vectors of the residual row
// and the norm weight, then adds the sums in split order (DecodeMmaReduceKernel's sums), rounds the
// projection to bf16, adds it to the residual and writes the normalized row: DecodeMmaReduceKernel<kStore>
// then AddRmsNorm, bit for bit, in one kernel (the other warps add zeros to the block sum).
template <int kVecs>
static __global__ void __launch_bounds__(kReduceNormThreads, 1)
    DecodeMmaReduceNormKernel(Params p, ResidualNorm norm) {
  extern __shared__ float4 sums[];  // [ksplit, n / 4]: row r's partial sums
  __shared__ float scratch[kReduceNormThreads / 32];
  GridDependencyWait();
  LaunchDependents();
  const int r = blockIdx.x, row_vecs = p.n / 4;
  const float* row_partials = p.partials + static_cast<int64_t>(r) * p.n;  // split s at s * m * n
  const int64_t split_stride = static_cast<int64_t>(p.m) * p.n;
  for (int v = threadIdx.x; v < row_vecs; v += kReduceNormThreads) {  // no division on the copies' path
    for (int s = 0; s < p.ksplit; ++s)
      CopyAsync16<CopyCache::kL2Only>(sums + s * row_vecs + v, row_partials + s * split_stride + 4 * v, true);
  }
  CommitAsyncCopies();
  __nv_bfloat16* residual = norm.residual + static_cast<int64_t>(r) * p.n;
  HeldRow<kVecs> row;
  LoadHeldRow(row, residual, norm.weight, p.n, kAddRmsNormThreads);
  WaitAsyncCopies<0>();
  __syncthreads();
  ForEachHeldVector<kVecs>(p.n, kAddRmsNormThreads, [&](int j, int i) {
    float sum[8] = {};
    for (int s = 0; s < p.ksplit; ++s) {
      const float4 a = sums[s * row_vecs + i / 4], b = sums[s * row_vecs + i / 4 + 1];
      sum[0] += a.x, sum[1] += a.y, sum[2] += a.z, sum[3] += a.w;
      sum[4] += b.x, sum[5] += b.y, sum[6] += b.z, sum[7] += b.w;
    }
#pragma unroll
    for (int q = 0; q < 8; ++q) row.v[j][q] = RoundBf16(row.v[j][q] + RoundBf16(sum[q]));
    StoreBf16x8(residual + i, row.v[j]);
  });
  const float inv_rms = HeldRowInvRms(row, p.n, kAddRmsNormThreads, norm.eps, scratch);
  WriteHeldRow(row, norm.normed + static_cast<int64_t>(r) * p.n, p.n, kAddRmsNormThreads, inv_rms);
}

// Shared memory of DecodeMmaReduceNormKernel for k split `ksplit` ways over n outputs.
int ReduceNormSharedBytes(int ksplit, int n) { return ksplit * n * static_cast<int>(sizeof(float)); }

int TileRows(int m) { return m <= 8 ? 8 : m <= 16 ? 16 : m <= 32 ? 32 : 64; }

// Shared-memory row stride (16-byte vectors) of a k-range of `chunks`: 4 mod 8, so that the eight lanes of a
// quarter warp (rows g, g + 1; vectors t) read eight different bank groups.
int XStride(int chunks) {
  const int vecs = chunks * (kChunk / 8);
  return vecs % 8 == 0 ? vecs + 4 : vecs;
}

struct Grid {
  bool pipelined = false;
  int groups = 0, ksplit = 0, chunks_per_split = 0;  // pipelined: chunks are 64-wide k-tiles
  bool cluster_reduce = false;                       // pipelined: the splits add their sums in a cluster
};

// Warps a grid aims at: eight per multiprocessor (on the H100, 2, 4 and 16 measured slower at 8 to 32 rows:
// kernels/PERF_NOTES.md); DOZE_DECODE_MMA_WARPS overrides it (for measurements).
int TargetWarps() {
  static const int warps = EnvInt("DOZE_DECODE_MMA_WARPS", 8 * MultiprocessorCount());
  return warps;
}

// The fewest rows that take the pipelined kernel (on the H100 it wins from 3 rows: batch 8 -2.6% a step;
// below that the runner takes the GEMVs); DOZE_DECODE_MMA_PIPELINE_MIN_ROWS overrides it (65: never).
int PipelineMinRows() {
  static const int rows = EnvInt("DOZE_DECODE_MMA_PIPELINE_MIN_ROWS", 3);
  return rows;
}

// Whether the pipelined kernel's k splits (up to kMaxClusterBlocks) add their sums in a cluster instead of
// the reduce kernel; DOZE_DECODE_MMA_CLUSTER_REDUCE=0 keeps the reduce kernel (measurements).
bool UseClusterReduce() {
  static const bool cluster = EnvFlag("DOZE_DECODE_MMA_CLUSTER_REDUCE");
  return cluster;
}

// Whether DecodeMmaResidualNorm adds a k split's sums, the residual and the norm in one kernel: for splits of
// up to DOZE_DECODE_MMA_FUSED_NORM_MAX_SPLITS (default kMaxFusedNormSplits: on the H100 o_proj from 3 rows
// and down_proj at every row count; down's 16 splits at 17-64 rows since the kernel issues its copies
// without divisions, doze bench batch 24-64 -0.4 to -2.6%) whose sums fit the kernel's shared memory, for
// rows of up to four vectors a norm thread (4,096 values); else the projection as DecodeMmaStore runs it,
// then AddRmsNorm. DOZE_DECODE_MMA_FUSED_NORM=0 turns it off (measurements).
constexpr int kMaxFusedNormSplits = 16;
bool UseFusedNorm(int ksplit, int n) {
  static const bool enabled = EnvFlag("DOZE_DECODE_MMA_FUSED_NORM");
  static const int max_splits = EnvInt("DOZE_DECODE_MMA_FUSED_NORM_MAX_SPLITS", kMaxFusedNormSplits);
  return enabled && ksplit > 1 && ksplit <= max_splits && NormVecs(n) <= 4 &&
         ReduceNormSharedBytes(ksplit, n) <= kMaxReduceNormSharedBytes;
}

// Whether a cluster's epilogue constants are read before the wait (PrepareClusterUnits): with one 8-row tile
// of x (on the H100 batch 4 and 8 steps -1.5 to -2%) and with the 64-row tile (33-64 rows: batch 64 -1.5%
// since the cluster's final barrier arrives relaxed), not at 16 rows (no change) nor 32 (+1.7%)
// (kernels/PERF_NOTES.md, twelfth and thirteenth sessions). DOZE_DECODE_MMA_PREPARE_UNITS=0 turns it off
// (measurements).
bool UsePreparedUnits(int m) {
  static const bool enabled = EnvFlag("DOZE_DECODE_MMA_PREPARE_UNITS");
  return enabled && (TileRows(m) == 8 || TileRows(m) == 64);
}

// The k-tile of a block's `tiles` at which it lets the next kernel launch (programmatic dependent launch):
// 0, right after its wait, but for gate/up (kSwiGlu), whose successor (down) asks for its first weight
// stages at launch and would share the memory with gate/up's whole stream: after 3/7 of its tiles (on the
// H100 the sixth of 14, doze bench batch 4-64 -3 to -4.5% against launching at the wait, -2% against
// launching after the last tile; kernels/PERF_NOTES.md, fifteenth session). DOZE_DECODE_MMA_LATE_LAUNCH=0
// launches at the wait (measurements). From DOZE_DECODE_MMA_DOWN_EXIT_LAUNCH_MIN_ROWS rows (default 33, where
// gate/up is DecodeTmaSwiGlu; 65: never) a projection that narrows (down_proj, whose successor adds its
// splits and the norm) lets it launch only as it exits: on the H100 batch 33 -2%, 48 -1.1%, 64 -0.2 to -0.8%
// against at the wait, batch 4 +0.3% (kernels/PERF_NOTES.md, seventeenth session).
int LaunchTile(Epilogue e, int tiles, int m, bool narrowing) {
  static const bool late = EnvFlag("DOZE_DECODE_MMA_LATE_LAUNCH");
  static const int exit_min_rows = EnvInt("DOZE_DECODE_MMA_DOWN_EXIT_LAUNCH_MIN_ROWS", 33);
  if (!late) return 0;
  if (e == Epilogue::kSwiGlu) return tiles * 3 / 7;
  return e == Epilogue::kStore && narrowing && m >= exit_min_rows ? tiles : 0;  // tiles: at the block's exit
}

// Weight stages a pipelined block asks for before its wait: all but one of its stages, but at most 4 for
// gate/up (kSwiGlu: 6 to 10 stages), whose early loads otherwise slow the norm kernel before it (on the H100
// doze bench batch 4-32 -1.3 to -2.4%, 48-64 within the spread; kernels/PERF_NOTES.md, fifteenth session).
// DOZE_DECODE_MMA_SWIGLU_EARLY_STAGES overrides the 4 (measurements).
int EarlyWeightStages(Epilogue e) {
  static const int swiglu = EnvInt("DOZE_DECODE_MMA_SWIGLU_EARLY_STAGES", 4);
  return e == Epilogue::kSwiGlu ? swiglu
                                : kPipeStages<1, kDeepRing>;  // the deepest ring's count: all of them
}

// Whether the k splits of a 64-row tile (at most five k-tiles each: down_proj at Qwen2.5-0.5B's shape) take
// the lean ring: from DOZE_DECODE_MMA_LEAN_MIN_ROWS rows (default 57; 65: never). On the H100 after
// DecodeTmaSwiGlu's 6 stages, batch 64 -1.3 to -1.6% a step against the six-stage ring, batch 48 and 56 +0
// to +1.3% (kernels/PERF_NOTES.md, seventeenth session).
bool UseLeanRing(int m) {
  static const int min_rows = EnvInt("DOZE_DECODE_MMA_LEAN_MIN_ROWS", 57);
  return m >= min_rows;
}

// Blocks a pipelined grid aims at: one per multiprocessor; DOZE_DECODE_MMA_BLOCKS overrides it.
int TargetBlocks() {
  static const int blocks = EnvInt("DOZE_DECODE_MMA_BLOCKS", MultiprocessorCount());
  return blocks;
}

int NumItems(Epilogue e, int n) { return e == Epilogue::kStore ? n : n / 2; }

// Register-fed kernel: splits k over blocks until the grid has about TargetWarps() warps, with at least two
// chunks per split, the split sums no larger than the weights and x's slice within kMaxSharedBytes.
Grid PlanRegisterGrid(int m, int num_items, int k) {
  Grid grid;
  const int warps = num_items / kTileRows;
  grid.groups = (warps + kWarps - 1) / kWarps;
  const int chunks = k / kChunk;
  int ksplit = std::max(1, TargetWarps() / warps);
  ksplit = std::min({ksplit, std::max(1, k / (2 * m)), std::max(1, chunks / 2)});
  const int max_chunks = (kMaxSharedBytes / (TileRows(m) * 16) - 4) / (kChunk / 8);
  ksplit = std::max(ksplit, (chunks + max_chunks - 1) / max_chunks);
  grid.chunks_per_split = (chunks + ksplit - 1) / ksplit;
  grid.ksplit = (chunks + grid.chunks_per_split - 1) / grid.chunks_per_split;
  return grid;
}

// Pipelined kernel: splits k over blocks until the grid has about TargetBlocks() blocks, at least two k-tiles
// per split; up to kMaxClusterBlocks splits add their sums in a cluster (where UseClusterReduce). A
// projection that narrows (k > n: down_proj) at up to 16 rows splits only as far as one cluster a group, so
// that no reduce kernel follows (through DecodeMmaResidualNorm, the norm kernel adds the 8 splits): on the
// H100 down at 4 to 16 rows in 8 splits of 10 k-tiles took batch 4-16 steps 1-1.5% under 16 splits of 5, the
// reduce kernel and AddRmsNorm, and 32-64 rows ~0.8% over (kernels/PERF_NOTES.md).
Grid PlanPipelinedGrid(Epilogue e, int m, int n, int k) {
  Grid grid;
  grid.pipelined = true;
  grid.groups = (NumItems(e, n) + PipeItems(e) - 1) / PipeItems(e);
  const int tiles = (k + kPipeK - 1) / kPipeK;
  static const bool narrow_clusters = EnvFlag("DOZE_DECODE_MMA_NARROW_CLUSTERS");  // 0: off (measurements)
  const bool narrowing = narrow_clusters && k > n && TileRows(m) <= 16;
  const int target = narrowing ? kMaxClusterBlocks * grid.groups : TargetBlocks();
  const int ksplit = std::clamp(target / grid.groups, 1, std::max(1, tiles / 2));
  grid.chunks_per_split = (tiles + ksplit - 1) / ksplit;
  grid.ksplit = (tiles + grid.chunks_per_split - 1) / grid.chunks_per_split;
  grid.cluster_reduce = grid.ksplit > 1 && grid.ksplit <= kMaxClusterBlocks && UseClusterReduce();
  return grid;
}

Grid PlanGrid(Epilogue e, int m, int n, int k) {
  return m >= PipelineMinRows() ? PlanPipelinedGrid(e, m, n, k) : PlanRegisterGrid(m, NumItems(e, n), k);
}

template <int kNTiles, Epilogue E, int kRing>
void LaunchPipelined(const Params& p, dim3 blocks, bool cluster, cudaStream_t stream) {
  void (*kernel)(Params) = DecodeMmaPipelinedKernel<kNTiles, E, kRing>;
  constexpr int kShared = kPipeStages<kNTiles, kRing> * (kPipeTileBytes + kNTiles * 8 * kPipeK * 2);
  static const bool opted_in = [kernel] {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kShared));
    return true;
  }();
  (void)opted_in;
  LaunchClustersWithPdl(kernel, blocks, dim3(kPipeThreads), dim3(1, cluster ? blocks.y : 1, 1), kShared,
                        stream, p);
}

template <int kNTiles, Epilogue E>
void LaunchTiles(const Params& p, const Grid& grid, cudaStream_t stream) {
  const dim3 blocks(grid.groups, grid.ksplit);
  if (grid.pipelined) {
    if (grid.ksplit == 1 || kNTiles == 4) {  // the choice that measured best at 16 and at 32 rows
      LaunchPipelined<kNTiles, E, kDeepRing>(p, blocks, grid.cluster_reduce, stream);
    } else if (kNTiles == 8 && E == Epilogue::kStore && grid.chunks_per_split <= 5 && UseLeanRing(p.m)) {
      LaunchPipelined<8, Epilogue::kStore, kLeanRing>(p, blocks, grid.cluster_reduce, stream);
    } else {
      LaunchPipelined<kNTiles, E, kShallowRing>(p, blocks, grid.cluster_reduce, stream);
    }
    return;
  }
  void (*kernel)(Params) = DecodeMmaKernel<kNTiles, E>;
  static const bool opted_in = [kernel] {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSharedBytes));
    return true;
  }();
  (void)opted_in;
  const size_t shared = static_cast<size_t>(TileRows(p.m)) * p.x_stride * sizeof(uint4);
  LaunchWithPdl(kernel, blocks, dim3(kThreads), shared, stream, p);
}

// With `norm` (kStore only), the projection is followed by its residual add and norm (DecodeMmaResidualNorm).
template <Epilogue E>
void Launch(Params p, const DecodeMmaWorkspace& workspace, cudaStream_t stream,
            const ResidualNorm* norm = nullptr) {
  if (p.m == 0) return;
  if (p.m < 0 || p.m > kDecodeMmaMaxRows || !DecodeMmaSupports(p.n, p.k)) {
    CudaFail("DecodeMma", "needs 1 <= m <= 64, k % 32 == 0 and n % 32 == 0", __FILE__, __LINE__);
  }
  Grid grid = PlanGrid(E, p.m, p.n, p.k);
  const bool fuse_norm = norm != nullptr && UseFusedNorm(grid.ksplit, p.n);
  if (fuse_norm) grid.cluster_reduce = false;  // the splits store partial sums for the norm kernel
  if (workspace.bytes < DecodeMmaWorkspaceBytes(p.m, p.n, p.k)) {
    CudaFail("DecodeMma", "workspace too small", __FILE__, __LINE__);
  }
  p.ksplit = grid.ksplit;
  p.chunks_per_split = grid.chunks_per_split;
  p.x_stride = XStride(grid.chunks_per_split);
  p.partials = static_cast<float*>(workspace.data);
  p.wgmma = UseWgmma();
  p.cluster_reduce = grid.cluster_reduce;
  p.prepare_units = UsePreparedUnits(p.m);
  p.launch_tile = grid.pipelined ? LaunchTile(E, grid.chunks_per_split, p.m, p.k > p.n) : 0;
  p.early_stages = grid.pipelined ? EarlyWeightStages(E) : 0;
  switch (TileRows(p.m)) {
    case 8:
      LaunchTiles<1, E>(p, grid, stream);
      break;
    case 16:
      LaunchTiles<2, E>(p, grid, stream);
      break;
    case 32:
      LaunchTiles<4, E>(p, grid, stream);
      break;
    default:
      LaunchTiles<8, E>(p, grid, stream);
      break;
  }
  if (grid.ksplit > 1 && !grid.cluster_reduce) {
    if (fuse_norm) {
      void (*kernel)(Params, ResidualNorm) = NormVecs(p.n) == 1   ? DecodeMmaReduceNormKernel<1>
                                             : NormVecs(p.n) == 2 ? DecodeMmaReduceNormKernel<2>
                                                                  : DecodeMmaReduceNormKernel<4>;
      static const bool opted_in = [] {
        for (auto* each :
             {DecodeMmaReduceNormKernel<1>, DecodeMmaReduceNormKernel<2>, DecodeMmaReduceNormKernel<4>}) {
          CUDA_CHECK(cudaFuncSetAttribute(each, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          kMaxReduceNormSharedBytes));
        }
        return true;
      }();
      (void)opted_in;
      LaunchWithPdl(kernel, dim3(p.m), dim3(kReduceNormThreads), ReduceNormSharedBytes(grid.ksplit, p.n),
                    stream, p, *norm);
      return;
    }
    const int outputs = p.m * p.num_items;
    LaunchWithPdl(DecodeMmaReduceKernel<E>, dim3((outputs + kReduceThreads - 1) / kReduceThreads),
                  dim3(kReduceThreads), 0, stream, p);
  }
  if (norm != nullptr)
    AddRmsNorm(norm->residual, p.out, norm->weight, norm->normed, p.m, p.n, norm->eps, stream);
}

}  // namespace

bool DecodeMmaSupports(int n, int k) { return n > 0 && k > 0 && n % 32 == 0 && k % kChunk == 0; }

size_t DecodeMmaWorkspaceBytes(int m, int n, int k) {
  if (m <= 0 || !DecodeMmaSupports(n, k)) return 0;
  size_t most = 0;
  for (Epilogue e : {Epilogue::kStore, Epilogue::kSwiGlu}) {
    const Grid grid = PlanGrid(e, m, n, k);
    // Clusters need none, but DecodeMmaResidualNorm stores partial sums where a cluster would add them.
    if (grid.ksplit > 1) most = std::max(most, static_cast<size_t>(grid.ksplit) * m * n * sizeof(float));
  }
  return most;
}

void DecodeMmaStore(const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* y, int m, int n, int k,
                    const DecodeMmaWorkspace& workspace, cudaStream_t stream) {
  Params p{};
  p.x = x, p.w = w, p.out = y;
  p.m = m, p.n = n, p.k = k, p.num_items = n;
  Launch<Epilogue::kStore>(p, workspace, stream);
}

void DecodeMmaResidualNorm(const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* y, int m, int n,
                           int k, const ResidualNorm& norm, const DecodeMmaWorkspace& workspace,
                           cudaStream_t stream) {
  Params p{};
  p.x = x, p.w = w, p.out = y;
  p.m = m, p.n = n, p.k = k, p.num_items = n;
  Launch<Epilogue::kStore>(p, workspace, stream, &norm);
}

void DecodeMmaSwiGlu(const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* act, int m,
                     int intermediate, int hidden, const DecodeMmaWorkspace& workspace, cudaStream_t stream) {
  if (UseDecodeTmaSwiGlu(x, w, m, hidden)) return DecodeTmaSwiGlu(x, w, act, m, intermediate, hidden, stream);
  Params p{};
  p.x = x, p.w = w, p.out = act;
  p.m = m, p.n = 2 * intermediate, p.k = hidden, p.num_items = intermediate;
  Launch<Epilogue::kSwiGlu>(p, workspace, stream);
}

void DecodeMmaQkvRotary(const __nv_bfloat16* x, const __nv_bfloat16* w, const __nv_bfloat16* bias,
                        const RotaryCacheOutput& out, const RotaryShape& shape, int hidden,
                        const DecodeMmaWorkspace& workspace, cudaStream_t stream) {
  if (shape.head_dim % 32 != 0 || !RotaryHeadDimSupported(shape.head_dim))
    CudaFail("DecodeMmaQkvRotary", "head_dim must be a power of two, at least 32", __FILE__, __LINE__);
  const int width = (shape.num_q_heads + 2 * shape.num_kv_heads) * shape.head_dim;
  Params p{};
  p.x = x, p.w = w, p.bias = bias, p.rotary = out, p.shape = shape;
  p.m = shape.num_tokens, p.n = width, p.k = hidden, p.num_items = width / 2;
  Launch<Epilogue::kRotary>(p, workspace, stream);
}

}  // namespace doze::kernels

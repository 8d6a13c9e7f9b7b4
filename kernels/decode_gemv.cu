#include <algorithm>

#include "kernels/cuda_check.h"
#include "kernels/decode_epilogue.cuh"
#include "kernels/decode_gemv.h"
#include "kernels/device_info.h"
#include "kernels/env_knob.h"
#include "kernels/norm_stage.cuh"
#include "kernels/pdl.cuh"
#include "kernels/pending_residual.cuh"
#include "kernels/vec.cuh"

namespace doze::kernels {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
// 16-byte weight loads in flight per lane and weight row: a warp's whole k-range of one item in one batch
// where the registers allow, so that no second round trip to memory follows the first: 4 x 32 vectors cover
// k = 1,024 (Qwen2.5-0.5B's 896), 5 x 32 the 152 vectors of each of down_proj's four k parts (4,864 / 8 / 4).
template <int kCols>
constexpr int kUnroll = kCols == 1 ? 5 : 4;

// One work item is one output column (kResidual) or a pair of columns that the epilogue combines: gate and
// up (kSwiGlu), or the two halves x[i], x[i + head_dim / 2] of one rotary pair (kRotary).
struct Params {
  const __nv_bfloat16* x;            // [m, k]: the input, or the residual stream when norm_weight is set
  const __nv_bfloat16* norm_weight;  // [k] (kNorm kernels only)
  float eps;
  const int64_t* pending;     // [m, k]: sums to add to x first (kernels/pending_residual.cuh), or nullptr
  const __nv_bfloat16* w;     // [n, k]
  const __nv_bfloat16* bias;  // [n] or nullptr (kRotary only)
  __nv_bfloat16* out;         // kResidual: residual [m, n]; kSwiGlu: act [m, n / 2]; kRotary: unused
  RotaryCacheOutput rotary;   // kRotary only
  RotaryShape shape;          // kRotary only
  int m, n, k, num_items;
  int k_split = 1;
  // Vectors by which each block's copy of x starts later than the previous block's (StageX), so that the
  // blocks do not all ask the L2 for the same line at once.
  int stage_rotation = 0;
};

// Loads kUnroll<kCols> 16-byte pieces of each weight row (vector base + lane + 32 u); pieces past v_end read
// zero.
template <int kCols>
__device__ __forceinline__ void LoadWeights(Bf16x8 (&dst)[kCols][kUnroll<kCols>],
                                            const __nv_bfloat16* const (&rows)[kCols], int base, int v_end) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
#pragma unroll
    for (int u = 0; u < kUnroll<kCols>; ++u) {
      const int v = base + lane + 32 * u;
      dst[c][u] = LoadVecOrZero(reinterpret_cast<const Bf16x8*>(rows[c] + v * 8), v < v_end);
    }
  }
}

// x's values with their pending sums added, two a thread at a time, so that a warp's loads of the sums (16
// bytes a lane) are contiguous: eight a lane, 64 bytes apart, would each touch twice the sectors they use.
// Staggered across blocks as StageX's copy is (StageRotation).
__device__ __forceinline__ void StagePairsWithPending(const Params& p, Bf16x8* xs) {
  const int pairs = p.m * p.k / 2;
  const __nv_bfloat162* src = reinterpret_cast<const __nv_bfloat162*>(p.x);
  const longlong2* sums = reinterpret_cast<const longlong2*>(p.pending);
  __nv_bfloat162* dst = reinterpret_cast<__nv_bfloat162*>(xs);
  const int first = RotationStart(4 * p.stage_rotation, pairs);  // four pairs a vector
  for (int i = threadIdx.x; i < pairs; i += kThreads) {
    const int e = RotatedIndex(i, first, pairs);
    const longlong2 s = sums[e];
    const float2 x = __bfloat1622float2(src[e]);
    dst[e] = __floats2bfloat162_rn(WithPending(x.x, s.x), WithPending(x.y, s.y));
  }
}

// Copies the m rows of x into shared memory, each value with its pending sum added where the residual stream
// has one (p.pending); with kNorm replaces them by RmsNorm(x) * norm_weight rounded to bf16, as RmsNorm
// stores it (the weight staged by StageNormWeight after x's rows). Ends with a barrier.
template <int kRows, bool kNorm>
__device__ void StageX(const Params& p, Bf16x8* xs, float (&scratch)[kWarps][kRows]) {
  const int num_vecs = p.k / 8, total = p.m * num_vecs;
  if (p.pending != nullptr) {
    StagePairsWithPending(p, xs);
  } else {
    const Bf16x8* src = reinterpret_cast<const Bf16x8*>(p.x);
    const int first = RotationStart(p.stage_rotation, total);
    for (int i = threadIdx.x; i < total; i += kThreads) {
      const int e = RotatedIndex(i, first, total);
      StoreVec(xs + e, LoadVec(src + e));
    }
  }
  if constexpr (kNorm) NormalizeStagedRows<kWarps, kRows>(xs, xs + total, p.m, p.k, p.eps, scratch);
  __syncthreads();
}

// What an item's epilogue reads besides its dot products, loaded before them so that those loads overlap the
// weights'.
struct EpilogueInputs {
  RotaryInputs rotary;   // kRotary
  float residual = 0.f;  // kResidual: the residual value the product is added to
};

// The inputs of lane r's epilogue that depend on constants and host metadata only (may run before the wait).
template <Epilogue E>
__device__ __forceinline__ EpilogueInputs PrepareConstants(const Params& p, int item, int2 cols, int r,
                                                           bool active) {
  EpilogueInputs in;
  if constexpr (E == Epilogue::kRotary) {
    if (!active || r >= p.m) return in;
    in.rotary = ReadRotaryInputs(p.rotary, p.shape, p.bias, item, cols, r);
  }
  return in;
}

// The residual value lane r's epilogue adds to (written by earlier kernels: after the wait only).
template <Epilogue E>
__device__ __forceinline__ void PrepareResidual(const Params& p, int2 cols, int r, bool active,
                                                EpilogueInputs& in) {
  if constexpr (E == Epilogue::kResidual) {
    if (active && r < p.m) in.residual = __bfloat162float(p.out[static_cast<int64_t>(r) * p.n + cols.x]);
  }
}

// Row r of the item's output from its dot products `sum` (one per column of the item).
template <Epilogue E>
__device__ void Finish(const Params& p, int item, int2 cols, int r, const float (&sum)[2],
                       const EpilogueInputs& in) {
  if constexpr (E == Epilogue::kResidual) {
    p.out[static_cast<int64_t>(r) * p.n + cols.x] = __float2bfloat16(in.residual + RoundBf16(sum[0]));
  } else if constexpr (E == Epilogue::kSwiGlu) {
    p.out[static_cast<int64_t>(r) * p.num_items + item] = __float2bfloat16(SwiGlu(sum[0], sum[1]));
  } else {
    StoreRotaryPair(p.rotary, p.shape, p.n, r, item, cols, sum[0], sum[1], in.rotary);
  }
}

// What one warp does for one block item: the output item, its weight rows and its part of the k range.
template <Epilogue E, int kCols>
struct WarpWork {
  int item;
  int2 cols;
  int v_begin, v_end;  // 16-byte vectors of k; empty when the item is past the end
  const __nv_bfloat16* rows[kCols];

  __device__ WarpWork(const Params& p, int block_item) {
    const int warp = threadIdx.x >> 5;
    item = block_item * (kWarps / p.k_split) + warp / p.k_split;
    const bool active = item < p.num_items;
    const int num_vecs = p.k / 8, part_vecs = (num_vecs + p.k_split - 1) / p.k_split;
    v_begin = (warp % p.k_split) * part_vecs;
    v_end = active ? min(num_vecs, v_begin + part_vecs) : v_begin;
    cols = active ? ItemColumns<E>(item, p.num_items, p.shape.head_dim) : int2{0, 0};
    rows[0] = p.w + static_cast<int64_t>(cols.x) * p.k;
    if constexpr (kCols == 2) rows[kCols - 1] = p.w + static_cast<int64_t>(cols.y) * p.k;
  }
};

// acc[r][c] += x_r . w_c over the work's k range, from the batch of weights already in `next`; each batch
// is used as soon as it lands and the following one (or, at the end, the next item's first) is issued right
// after. One buffer, so that more warps fit on a multiprocessor.
template <int kRows, int kCols, typename Work>
__device__ __forceinline__ void DotProducts(const Params& p, const Bf16x8* xs, const Work& work,
                                            const Work& following, Bf16x8 (&next)[kCols][kUnroll<kCols>],
                                            float (&acc)[kRows][kCols]) {
  const int lane = threadIdx.x & 31, num_vecs = p.k / 8;
  for (int base = work.v_begin; base < work.v_end; base += 32 * kUnroll<kCols>) {
#pragma unroll
    for (int u = 0; u < kUnroll<kCols>; ++u) {
      const int v = base + lane + 32 * u;
      if (v >= work.v_end) break;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        if (r >= p.m) break;
        float xv[8];
        Bf16x8ToFloat(LoadVec(xs + r * num_vecs + v), xv);
#pragma unroll
        for (int c = 0; c < kCols; ++c) {
          float wv[8];
          Bf16x8ToFloat(next[c][u], wv);
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[r][c] = fmaf(wv[j], xv[j], acc[r][c]);
        }
      }
    }
    if (base + 32 * kUnroll<kCols> < work.v_end)
      LoadWeights<kCols>(next, work.rows, base + 32 * kUnroll<kCols>, work.v_end);
  }
  LoadWeights<kCols>(next, following.rows, following.v_begin, following.v_end);
}

// Lane r of each item's part-0 warp gets the item's full dot products for row r in sum[c]. With k split 1 the
// warp holds them and no barrier is needed (warps run ahead independently); else the parts meet in `partial`
// between two barriers (the second because the next item rewrites it).
template <int kRows, int kCols>
__device__ __forceinline__ void SumParts(const Params& p, float (&acc)[kRows][kCols],
                                         float (&partial)[kWarps][kRows][kCols], float (&sum)[2]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      const float s = WarpSum(acc[r][c]);
      if (p.k_split == 1 && lane == r) sum[c] = s;
      if (p.k_split > 1 && lane == 0) partial[warp][r][c] = s;
    }
  }
  if (p.k_split == 1) return;
  __syncthreads();
  if (warp % p.k_split == 0 && lane < p.m) {
    for (int s = 0; s < p.k_split; ++s) {
#pragma unroll
      for (int c = 0; c < kCols; ++c) sum[c] += partial[warp + s][lane][c];
    }
  }
  __syncthreads();
}

// Blocks of kWarps warps stride over block items; in block item b, warp w serves output item
// b * (kWarps / k_split) + w / k_split over the k-range part w % k_split, and the part-0 warp of each item
// adds the parts up and runs the epilogue (lane r: row r). The grid is one wave, so the first item's weights
// load before the wait on the previous kernel and each later item's while the one before it is computed.
// `__launch_bounds__(kThreads, 1)`: with one block a multiprocessor as the only bound, ptxas gives these
// kernels 116-128 registers (64-96 without the second argument), so two blocks fit a multiprocessor instead
// of three or four; measured faster at one and two rows (kernels/PERF_NOTES.md, eleventh session).
template <int kRows, Epilogue E, bool kNorm>
static __global__ void __launch_bounds__(kThreads, 1) DecodeGemvKernel(Params p, int num_block_items) {
  constexpr int kCols = E == Epilogue::kResidual ? 1 : 2;
  using Work = WarpWork<E, kCols>;
  extern __shared__ Bf16x8 xs[];  // [m, k / 8], then with kNorm the norm weight [k / 8]
  __shared__ float scratch[kWarps][kRows];
  __shared__ float partial[kWarps][kRows][kCols];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  Work work(p, blockIdx.x);
  const bool leader = warp % p.k_split == 0;  // the warp that runs its item's epilogue
  Bf16x8 next[kCols][kUnroll<kCols>];
  LoadWeights<kCols>(next, work.rows, work.v_begin, work.v_end);  // weights are constant: before the wait
  if constexpr (kNorm) StageNormWeight<kThreads>(p.norm_weight, p.k, xs + p.m * (p.k / 8));
  EpilogueInputs in = PrepareConstants<E>(p, work.item, work.cols, lane, leader && work.v_end > work.v_begin);
  GridDependencyWait();
  LaunchDependents();
  PrepareResidual<E>(p, work.cols, lane, leader && work.v_end > work.v_begin, in);
  StageX<kRows, kNorm>(p, xs, scratch);

  for (int block_item = blockIdx.x; block_item < num_block_items; block_item += gridDim.x) {
    const Work following(p, block_item + gridDim.x);
    const bool following_active = leader && following.v_end > following.v_begin;
    EpilogueInputs following_in =
        PrepareConstants<E>(p, following.item, following.cols, lane, following_active);
    float acc[kRows][kCols] = {};
    DotProducts<kRows, kCols>(p, xs, work, following, next, acc);
    float sum[2] = {0.f, 0.f};
    SumParts<kRows, kCols>(p, acc, partial, sum);
    if (leader && work.v_end > work.v_begin && lane < p.m) Finish<E>(p, work.item, work.cols, lane, sum, in);
    work = following;
    in = following_in;
    PrepareResidual<E>(p, work.cols, lane, following_active, in);
  }
}

// Splits k over several warps of a block when the rows are long, so that enough loads are in flight
// (down_proj: 896 rows of 4864 would otherwise give only 112 blocks).
int KSplit(int k) {
  int split = 1;
  while (split < kWarps && k / (2 * split) >= 1024) split *= 2;
  return split;
}

template <int kRows, Epilogue E, bool kNorm>
void LaunchRows(const Params& p, cudaStream_t stream) {
  void (*kernel)(Params, int) = DecodeGemvKernel<kRows, E, kNorm>;
  // x of 8 rows of 4864 needs 78 KB: opt in to the device's limit once per kernel (before any graph capture,
  // as the runner's first step of a bucket runs eagerly).
  static const int max_shared = [kernel] {
    int device = 0, optin = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    const int dynamic = optin - static_cast<int>(sizeof(float) * kWarps * kRows * 3);
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, dynamic));
    return dynamic;
  }();
  const size_t shared = static_cast<size_t>(p.m + (kNorm ? 1 : 0)) * p.k * sizeof(__nv_bfloat16);
  if (shared > static_cast<size_t>(max_shared)) CudaFail("DecodeGemv", "m * k too large", __FILE__, __LINE__);
  const int items_per_block = kWarps / p.k_split;
  const int block_items = (p.num_items + items_per_block - 1) / items_per_block;
  int per_sm = 0;
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, shared));
  const int blocks = std::max(1, std::min(block_items, per_sm * MultiprocessorCount()));
  LaunchWithPdl(kernel, dim3(blocks), dim3(kThreads), shared, stream, p, block_items);
}

template <Epilogue E, bool kNorm>
void Launch(Params p, cudaStream_t stream) {
  if (p.m == 0) return;
  if (p.m > kGemvMaxRows || p.k % 8 != 0) {
    CudaFail("DecodeGemv", "needs 1 <= m <= 8 and k % 8 == 0", __FILE__, __LINE__);
  }
  p.k_split = KSplit(p.k);
  p.stage_rotation = StageRotation();
  if (p.m == 1) {
    LaunchRows<1, E, kNorm>(p, stream);
  } else if (p.m == 2) {
    LaunchRows<2, E, kNorm>(p, stream);
  } else if (p.m <= 4) {
    LaunchRows<4, E, kNorm>(p, stream);
  } else {
    LaunchRows<8, E, kNorm>(p, stream);
  }
}

}  // namespace

void NormQkvRotaryGemv(const NormInput& in, const __nv_bfloat16* w, const __nv_bfloat16* bias,
                       const RotaryCacheOutput& out, const RotaryShape& shape, int hidden,
                       cudaStream_t stream) {
  if (!RotaryHeadDimSupported(shape.head_dim))
    CudaFail("NormQkvRotaryGemv", "head_dim must be a power of two", __FILE__, __LINE__);
  const int width = (shape.num_q_heads + 2 * shape.num_kv_heads) * shape.head_dim;
  Params p{};
  p.x = in.residual, p.norm_weight = in.weight, p.eps = in.eps, p.pending = in.pending, p.w = w,
  p.bias = bias;
  p.rotary = out, p.shape = shape;
  p.m = shape.num_tokens, p.n = width, p.k = hidden, p.num_items = width / 2;
  Launch<Epilogue::kRotary, true>(p, stream);
}

void NormSwiGluGemv(const NormInput& in, const __nv_bfloat16* w, __nv_bfloat16* act, int m, int intermediate,
                    int hidden, cudaStream_t stream) {
  Params p{};
  p.x = in.residual, p.norm_weight = in.weight, p.eps = in.eps, p.pending = in.pending, p.w = w, p.out = act;
  p.m = m, p.n = 2 * intermediate, p.k = hidden, p.num_items = intermediate;
  Launch<Epilogue::kSwiGlu, true>(p, stream);
}

void ResidualGemv(const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* residual, int m, int n,
                  int k, cudaStream_t stream) {
  Params p{};
  p.x = x, p.w = w, p.out = residual;
  p.m = m, p.n = n, p.k = k, p.num_items = n;
  Launch<Epilogue::kResidual, false>(p, stream);
}

}  // namespace doze::kernels

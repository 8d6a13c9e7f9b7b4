#include "kernels/attention_merge.cuh"
#include "kernels/cuda_check.h"
#include "kernels/decode_epilogue.cuh"
#include "kernels/env_knob.h"
#include "kernels/merge_residual_gemv.h"
#include "kernels/pdl.cuh"
#include "kernels/pending_residual.cuh"
#include "kernels/vec.cuh"

namespace doze::kernels {
namespace {

// 16-byte weight vectors a lane holds for one output row: the whole row of up to kMergeGemvMaxK.
constexpr int kVecsPerLane = kMergeGemvMaxK / 8 / 32;
// Query heads of one row at most (head_dim >= 64), and batches of kCombineBatch splits.
constexpr int kMaxHeads = kMergeGemvMaxK / 64;
constexpr int kMaxBatches = kAttentionMaxSplits / kCombineBatch;

// The merge's per-head part, computed once a head rather than once an element: each split's weight, each
// batch's rescale and the total (MergeSplits' operations, split between the heads' threads and the
// elements'). `max_sum` holds the valid splits' maxima and sums, loaded by one thread a split.
struct HeadWeights {
  float max_sum[kMaxHeads][kAttentionMaxSplits][2];
  float weight[kMaxHeads][kAttentionMaxSplits];
  float rescale[kMaxHeads][kMaxBatches];
  float total[kMaxHeads];
};

// The valid splits' maxima and sums of every head into hw.max_sum, one split a thread.
template <int kThreads>
__device__ void LoadMaxSums(const AttentionPartials& x, int valid, HeadWeights& hw) {
  const float* max_sum = PartialMaxSums(x);
  for (int i = threadIdx.x; i < x.num_q_heads * valid; i += kThreads) {
    const int h = i / valid, j = i % valid;
    const int64_t part = static_cast<int64_t>(h) * x.splits + j;
    hw.max_sum[h][j][0] = max_sum[part * 2];
    hw.max_sum[h][j][1] = max_sum[part * 2 + 1];
  }
}

// Thread h < num_q_heads: head h's weights from hw.max_sum, as MergeSplits computes them.
__device__ void ComputeHeadWeights(const AttentionPartials& x, int valid, HeadWeights& hw) {
  const int h = threadIdx.x;
  if (h >= x.num_q_heads) return;
  float running_max = -INFINITY, total = 0.f;
  for (int first = 0, b = 0; first < valid; first += kCombineBatch, ++b) {
    const int count = min(kCombineBatch, valid - first);
    float m[kCombineBatch], l[kCombineBatch];
#pragma unroll
    for (int j = 0; j < kCombineBatch; ++j) {
      m[j] = j < count ? hw.max_sum[h][first + j][0] : -INFINITY;
      l[j] = j < count ? hw.max_sum[h][first + j][1] : 0.f;
    }
    const float batch_max = BatchMax(running_max, m);
    const float rescale = exp2f(running_max - batch_max);  // 0 for the first batch
    total *= rescale;
    hw.rescale[h][b] = rescale;
#pragma unroll
    for (int j = 0; j < kCombineBatch; ++j) {
      const float weight = SplitWeight(m[j], l[j], batch_max);
      total += weight;
      hw.weight[h][first + j] = weight;
    }
    running_max = batch_max;
  }
  hw.total[h] = total;
}

// Element e's (head e / kHeadDim, its dim e % kHeadDim) partial values of splits first .. first +
// kCombineBatch - 1.
template <int kHeadDim>
__device__ __forceinline__ void LoadElementValues(const AttentionPartials& x, int e, int first, int valid,
                                                  float (&v)[kCombineBatch]) {
  LoadSplitValues<kHeadDim>(x, e / kHeadDim, e % kHeadDim, first, valid, v);
}

// Element e of the merged row, its first batch's values already loaded into v (MergeSplits' value).
template <int kHeadDim>
__device__ float MergedElement(const AttentionPartials& x, int e, int valid, const HeadWeights& hw,
                               float (&v)[kCombineBatch]) {
  const int h = e / kHeadDim;
  float value = 0.f;
  for (int first = 0, b = 0; first < valid; first += kCombineBatch, ++b) {
    if (first > 0) LoadElementValues<kHeadDim>(x, e, first, valid, v);
    value *= hw.rescale[h][b];
#pragma unroll
    for (int j = 0; j < kCombineBatch; ++j) value = fmaf(hw.weight[h][first + j], v[j], value);
  }
  return valid > 0 ? value / hw.total[h] : 0.f;
}

// Writes the merged row (bf16, as the combine kernel stores it) into `merged` [k]. The elements' first
// batch of values is requested before the heads' weights are computed, so that both wait on L2 together.
template <int kHeadDim, int kThreads>
__device__ void StageMergedRow(const AttentionPartials& x, int context, HeadWeights& hw,
                               __nv_bfloat16* merged) {
  const int k = x.num_q_heads * x.head_dim;
  if (x.splits == 1) {
    for (int e = threadIdx.x; e < k; e += kThreads) merged[e] = x.out[e];
    return;
  }
  constexpr int kElems = (kMergeGemvMaxK + kThreads - 1) / kThreads;
  const int valid = ValidSplits(context, x.splits, x.min_partition);
  float v[kElems][kCombineBatch];
#pragma unroll
  for (int i = 0; i < kElems; ++i) {
    const int e = threadIdx.x + i * kThreads;
    if (e < k) LoadElementValues<kHeadDim>(x, e, 0, valid, v[i]);
  }
  LoadMaxSums<kThreads>(x, valid, hw);
  __syncthreads();
  ComputeHeadWeights(x, valid, hw);
  __syncthreads();
#pragma unroll
  for (int i = 0; i < kElems; ++i) {
    const int e = threadIdx.x + i * kThreads;
    if (e < k) merged[e] = __float2bfloat16(MergedElement<kHeadDim>(x, e, valid, hw, v[i]));
  }
}

// Each warp owns one output row and holds all its weights in registers from before the wait, so that after
// it the kernel is the merge (one round trip to L2 for the partials), the dot products and the stores. Lane j
// reads the row's vectors j, j + 32, ... in the order ResidualGemv's lane does, and the same WarpSum adds
// them: the same bits.
template <int kHeadDim, int kWarps>
static __global__ void __launch_bounds__(kWarps * 32, 1)
    MergeResidualGemvKernel(AttentionPartials x,
                            const __nv_bfloat16* __restrict__ w,   // [n, k]
                            __nv_bfloat16* __restrict__ residual,  // [n]
                            int64_t* __restrict__ pending,         // [n] or nullptr
                            int n) {
  constexpr int kThreads = kWarps * 32;
  __shared__ Bf16x8 xs[kMergeGemvMaxK / 8];  // the merged row, [k / 8]
  __shared__ HeadWeights head_weights;
  const int k = x.num_q_heads * x.head_dim, num_vecs = k / 8;
  const int lane = threadIdx.x & 31, row = blockIdx.x * kWarps + (threadIdx.x >> 5);
  const Bf16x8* w_row = reinterpret_cast<const Bf16x8*>(w + static_cast<int64_t>(row) * k);
  Bf16x8 weights[kVecsPerLane];
#pragma unroll
  for (int u = 0; u < kVecsPerLane; ++u) {
    const int v = lane + 32 * u;
    weights[u] = LoadVecOrZero(w_row + v, row < n && v < num_vecs);
  }
  const int context = x.context_lens[0];  // host metadata: read before the wait
  GridDependencyWait();
  LaunchDependents();
  float old = 0.f;
  if (lane == 0 && row < n) {
    old = __bfloat162float(residual[row]);
    if (pending != nullptr) old = WithPending(old, pending[row]);
  }
  StageMergedRow<kHeadDim, kThreads>(x, context, head_weights, reinterpret_cast<__nv_bfloat16*>(xs));
  __syncthreads();
  float acc = 0.f;
#pragma unroll
  for (int u = 0; u < kVecsPerLane; ++u) {
    const int v = lane + 32 * u;
    if (v >= num_vecs) break;
    float xv[8], wv[8];
    Bf16x8ToFloat(LoadVec(xs + v), xv);
    Bf16x8ToFloat(weights[u], wv);
#pragma unroll
    for (int j = 0; j < 8; ++j) acc = fmaf(wv[j], xv[j], acc);
  }
  acc = WarpSum(acc);
  if (lane == 0 && row < n) {
    residual[row] = __float2bfloat16(old + RoundBf16(acc));
    if (pending != nullptr) pending[row] = 0;  // taken: zero for the next kernel that adds to it
  }
}

template <int kWarps>
void LaunchShape(const AttentionPartials& x, const __nv_bfloat16* w, __nv_bfloat16* residual,
                 int64_t* pending, int n, cudaStream_t stream) {
  auto* kernel =
      x.head_dim == 64 ? MergeResidualGemvKernel<64, kWarps> : MergeResidualGemvKernel<128, kWarps>;
  LaunchWithPdl(kernel, dim3((n + kWarps - 1) / kWarps), dim3(kWarps * 32), 0, stream, x, w, residual,
                pending, n);
}

}  // namespace

bool MergeResidualGemvTakes(int m, int k) { return m == 1 && k > 0 && k % 8 == 0 && k <= kMergeGemvMaxK; }

void MergeResidualGemv(const AttentionPartials& x, const __nv_bfloat16* w, __nv_bfloat16* residual,
                       int64_t* pending, int n, cudaStream_t stream) {
  if (!MergeResidualGemvTakes(x.num_tokens, x.num_q_heads * x.head_dim) ||
      (x.head_dim != 64 && x.head_dim != 128))
    CudaFail("MergeResidualGemv", "needs one row of at most 1,024 values and head_dim 64 or 128", __FILE__,
             __LINE__);
  if (n <= 0) return;
  // Output rows a block, one a warp: 16 by default; DOZE_MERGE_GEMV_ROWS = 8 or 12 (measurements: H100 batch
  // 1 0.577 and 0.557 ms against 0.552 with 16; with 24 and 32 rows, 38 and 28 blocks with spilled registers,
  // 0.684 and 0.697 ms: kernels/PERF_NOTES.md).
  static const int rows = EnvInt("DOZE_MERGE_GEMV_ROWS", 16);
  if (rows == 8) return LaunchShape<8>(x, w, residual, pending, n, stream);
  if (rows == 12) return LaunchShape<12>(x, w, residual, pending, n, stream);
  LaunchShape<16>(x, w, residual, pending, n, stream);
}

}  // namespace doze::kernels

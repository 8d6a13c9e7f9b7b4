// The merge of a split decode attention's partial softmaxes (flash-decoding): the combine kernel and the
// kernels that merge the partials themselves (MergeResidualGemv) share this arithmetic, so that they produce
// the same bits.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/attention_partials.h"

namespace doze::kernels {

// Partials merged with one round trip to L2: each split's max, sum and value loaded together.
constexpr int kCombineBatch = 16;

// Keys per split of a row of `context` keys cut into `splits` even parts, rounded up to
// kAttentionPartitionAlign and at least `min_partition`: the split kernel and the merge both derive it from
// the row's own length, so that a graph captured for a context bucket splits each row evenly whatever its
// length.
__device__ __forceinline__ int RowPartition(int context, int splits, int min_partition) {
  const int per_split = (context + splits - 1) / splits;
  return max(min_partition, (per_split + kAttentionPartitionAlign - 1) / kAttentionPartitionAlign *
                                kAttentionPartitionAlign);
}

// Splits of a row of `context` keys that saw at least one key.
__device__ __forceinline__ int ValidSplits(int context, int splits, int min_partition) {
  const int partition = RowPartition(context, splits, min_partition);
  return (context + partition - 1) / partition;
}

// The pieces of the merge, so that every kernel that merges does the same operations in the same order:
// splits are folded kCombineBatch at a time into a running softmax (max, total, value); a batch first
// rescales what came before it to the batch's max, then adds each split's weight to the total and its
// weighted value to the value, in split order.
__device__ __forceinline__ float BatchMax(float running_max, const float (&m)[kCombineBatch]) {
  float batch_max = running_max;
#pragma unroll
  for (int j = 0; j < kCombineBatch; ++j) batch_max = fmaxf(batch_max, m[j]);
  return batch_max;
}

// The weight of a split with max `m` and sum `l` under the batch's max: 0 for an unused split (m = -inf).
__device__ __forceinline__ float SplitWeight(float m, float l, float batch_max) {
  return l * exp2f(m - batch_max);
}

// The (max, sum) pairs after the partial values: [num_tokens * num_q_heads * splits, 2].
__device__ __forceinline__ const float* PartialMaxSums(const AttentionPartials& p) {
  return p.workspace + static_cast<int64_t>(p.num_tokens) * p.num_q_heads * p.splits * p.head_dim;
}

// The max and sum of row `row`'s splits `first` .. `first + kCombineBatch - 1` (-inf and 0 from `valid` on).
__device__ __forceinline__ void LoadSplitMaxSum(const AttentionPartials& p, int64_t row, int first, int valid,
                                                float (&m)[kCombineBatch], float (&l)[kCombineBatch]) {
  const float* max_sum = PartialMaxSums(p);
#pragma unroll
  for (int j = 0; j < kCombineBatch; ++j) {
    const bool used = first + j < valid;
    const int64_t part = row * p.splits + (used ? first + j : 0);
    m[j] = used ? max_sum[part * 2] : -INFINITY;  // finite for a valid split: it saw at least one key
    l[j] = used ? max_sum[part * 2 + 1] : 0.f;
  }
}

// The partial values of row `row` at `dim` of the same splits (0 from `valid` on); kHeadDim (p.head_dim) as a
// constant puts the splits at immediate offsets from one address.
template <int kHeadDim>
__device__ __forceinline__ void LoadSplitValues(const AttentionPartials& p, int64_t row, int dim, int first,
                                                int valid, float (&v)[kCombineBatch]) {
  const float* values = p.workspace + (row * p.splits + first) * kHeadDim + dim;
#pragma unroll
  for (int j = 0; j < kCombineBatch; ++j) v[j] = first + j < valid ? values[j * kHeadDim] : 0.f;
}

// The merged softmax output of query row `row` (token * num_q_heads + head) at `dim` over its first `valid`
// splits, each batch's max, sum and value loaded together (one round trip to L2 for up to kCombineBatch
// splits); 0 for a row with no valid split.
template <int kHeadDim>
__device__ __forceinline__ float MergeSplits(const AttentionPartials& p, int64_t row, int dim, int valid) {
  float running_max = -INFINITY, total = 0.f, value = 0.f;
  for (int first = 0; first < valid; first += kCombineBatch) {
    float m[kCombineBatch], l[kCombineBatch], v[kCombineBatch];
    LoadSplitMaxSum(p, row, first, valid, m, l);
    LoadSplitValues<kHeadDim>(p, row, dim, first, valid, v);
    const float batch_max = BatchMax(running_max, m);
    const float rescale = exp2f(running_max - batch_max);  // 0 for the first batch
    total *= rescale;
    value *= rescale;
#pragma unroll
    for (int j = 0; j < kCombineBatch; ++j) {
      const float weight = SplitWeight(m[j], l[j], batch_max);
      total += weight;
      value = fmaf(weight, v[j], value);
    }
    running_max = batch_max;
  }
  return valid > 0 ? value / total : 0.f;
}

}  // namespace doze::kernels

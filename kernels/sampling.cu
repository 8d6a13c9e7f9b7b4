#include <cfloat>
#include <climits>

#include "kernels/cuda_check.h"
#include "kernels/sampling.h"
#include "kernels/vec.cuh"

namespace doze::kernels {
namespace {

constexpr int kThreads = 1024;  // SampleKernel and its block-wide helpers assume exactly this block size
constexpr int kWarps = kThreads / 32;
constexpr int kBinsPerThread = 4;
constexpr int kMaxBins = kThreads * kBinsPerThread;  // 12 bits per radix round

// Maps a float to an unsigned key with the same order, so thresholds can be found digit by digit.
__device__ __forceinline__ uint32_t OrderedKey(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float FromOrderedKey(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

struct Best {
  float value;
  int index;
};

__device__ __forceinline__ Best Better(Best a, Best b) {
  if (b.value > a.value || (b.value == a.value && b.index < a.index)) return b;
  return a;
}

// Block-wide argmax of (value, index) pairs, lowest index on ties; every thread gets the result.
__device__ Best BlockArgmax(Best best) {
  __shared__ float values[32];
  __shared__ int indices[32];
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    Best other{__shfl_xor_sync(0xffffffffu, best.value, offset),
               __shfl_xor_sync(0xffffffffu, best.index, offset)};
    best = Better(best, other);
  }
  __syncthreads();
  if ((threadIdx.x & 31) == 0) {
    values[threadIdx.x >> 5] = best.value;
    indices[threadIdx.x >> 5] = best.index;
  }
  __syncthreads();
  Best total{-INFINITY, 0x7fffffff};
  for (int w = 0; w < (blockDim.x >> 5); ++w) total = Better(total, Best{values[w], indices[w]});
  return total;
}

__device__ int RowArgmax(const float* row, int vocab) {
  Best best{-INFINITY, 0x7fffffff};
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) best = Better(best, Best{row[i], i});
  return BlockArgmax(best).index;
}

static __global__ void ArgmaxKernel(const float* __restrict__ logits,  // [num_rows, vocab]
                                    int32_t* __restrict__ out,         // [num_rows]
                                    int vocab) {
  const int index = RowArgmax(logits + static_cast<int64_t>(blockIdx.x) * vocab, vocab);
  if (threadIdx.x == 0) out[blockIdx.x] = index;
}

__device__ float BlockMax(float v) {
  __shared__ float scratch[kWarps];
  v = WarpMax(v);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
  __syncthreads();
  float total = -INFINITY;
  for (int w = 0; w < kWarps; ++w) total = fmaxf(total, scratch[w]);
  return total;
}

__device__ double BlockSumDouble(double v) {
  __shared__ double scratch[kWarps];
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
  __syncthreads();
  double total = 0.0;
  for (int w = 0; w < kWarps; ++w) total += scratch[w];
  return total;
}

// The sum of `v` over the threads after this one (exclusive suffix sum); `warp_totals` keeps each warp's sum.
__device__ float BlockSuffixSum(float v, float* warp_totals) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float inclusive = v;
#pragma unroll
  for (int offset = 1; offset < 32; offset <<= 1) {
    const float other = __shfl_down_sync(0xffffffffu, inclusive, offset);
    if (lane + offset < 32) inclusive += other;
  }
  __syncthreads();
  if (lane == 0) warp_totals[warp] = inclusive;
  __syncthreads();
  float later = 0.f;
  for (int w = warp + 1; w < kWarps; ++w) later += warp_totals[w];
  return later + inclusive - v;
}

// A threshold found by RadixSelect: its key, the metric of the tokens above it and of those at it.
struct Selected {
  uint32_t key;
  float above;
  float at;
};

// Picks, among the bins of one radix round, the highest non-empty bin whose metric together with the bins
// above it reaches `target` (else the lowest non-empty bin); returns it with the metric of the bins above.
__device__ Selected PickBin(const float* hist, int bins, float target) {
  __shared__ float warp_totals[kWarps];
  __shared__ int chosen, lowest;
  __shared__ float chosen_above, chosen_at;
  float local[kBinsPerThread];
  float local_sum = 0.f;
  const int first = threadIdx.x * kBinsPerThread;
#pragma unroll
  for (int j = 0; j < kBinsPerThread; ++j) {
    local[j] = first + j < bins ? hist[first + j] : 0.f;
    local_sum += local[j];
  }
  if (threadIdx.x == 0) chosen = -1, lowest = INT_MAX;
  const float above_thread = BlockSuffixSum(local_sum, warp_totals);
  float above = above_thread;
  for (int j = kBinsPerThread - 1; j >= 0; --j) {
    if (local[j] > 0.f) {
      atomicMin(&lowest, first + j);
      if (above + local[j] >= target) atomicMax(&chosen, first + j);
    }
    above += local[j];
  }
  __syncthreads();
  const int bin = chosen >= 0 ? chosen : lowest;
  if (bin >= first && bin < first + kBinsPerThread) {
    float bin_above = above_thread;
    for (int j = kBinsPerThread - 1; j > bin - first; --j) bin_above += local[j];
    chosen_above = bin_above;
    chosen_at = local[bin - first];
  }
  __syncthreads();
  const Selected picked{static_cast<uint32_t>(bin), chosen_above, chosen_at};
  __syncthreads();
  return picked;
}

// Among the tokens that `token(i, &key, &metric)` takes, the largest key t for which the metric summed over
// keys >= t reaches `target` (the smallest taken key if none does). Rounds of 12, 12 and 8 bits, one pass
// over the row each.
template <typename Token>
__device__ Selected RadixSelect(int vocab, Token token, float target, float* hist /*[kMaxBins]*/) {
  uint32_t prefix = 0, prefix_mask = 0;
  float above = 0.f, at = 0.f;
#pragma unroll 1
  for (int round = 0; round < 3; ++round) {
    const int shift = round == 0 ? 20 : round == 1 ? 8 : 0;
    const int bins = round == 2 ? 256 : kMaxBins;
    for (int b = threadIdx.x; b < bins; b += kThreads) hist[b] = 0.f;
    __syncthreads();
    for (int i = threadIdx.x; i < vocab; i += kThreads) {
      uint32_t key;
      float metric;
      if (!token(i, &key, &metric) || (key & prefix_mask) != prefix) continue;
      atomicAdd(&hist[(key >> shift) & (bins - 1)], metric);
    }
    __syncthreads();
    const Selected bin = PickBin(hist, bins, target - above);
    above += bin.above;
    at = bin.at;
    prefix |= bin.key << shift;
    prefix_mask |= static_cast<uint32_t>(bins - 1) << shift;
  }
  return Selected{prefix, above, at};
}

// One row's settings and the thresholds that decide which of its tokens may be drawn.
struct RowSampler {
  const float* row;  // [vocab]
  int vocab;
  float temperature;
  float row_max;           // of the tempered logits
  uint32_t top_k_key = 0;  // tokens need key >= this
  uint32_t top_p_key = 0;  // ... and key > this, or key == this and id <= top_p_last_id
  int top_p_last_id = INT_MAX;
  double min_logit = -INFINITY;  // ... and a tempered logit >= this

  __device__ float Tempered(int i) const { return row[i] / temperature; }
  __device__ bool Kept(int i, float logit) const {
    const uint32_t key = OrderedKey(logit);
    return key >= top_k_key && (key > top_p_key || (key == top_p_key && i <= top_p_last_id)) &&
           static_cast<double>(logit) >= min_logit;
  }
  // exp(logit - max) for a kept token, 0 otherwise: the draw's weight.
  __device__ float Weight(int i) const {
    const float logit = Tempered(i);
    return Kept(i, logit) ? expf(logit - row_max) : 0.f;
  }
};

__device__ void ApplyTopK(RowSampler& s, int top_k, float* hist) {
  if (top_k <= 0 || top_k >= s.vocab) return;
  auto token = [s](int i, uint32_t* key, float* metric) {
    *key = OrderedKey(s.Tempered(i));
    *metric = 1.f;
    return true;
  };
  s.top_k_key = RadixSelect(s.vocab, token, static_cast<float>(top_k), hist).key;
}

// Keeps tokens in most-likely-first order while the mass above them is below p of the top-k mass.
__device__ void ApplyTopP(RowSampler& s, float top_p, float* hist) {
  if (top_p >= 1.f) return;
  double mass = 0.0;
  for (int i = threadIdx.x; i < s.vocab; i += kThreads) {
    const float logit = s.Tempered(i);
    if (OrderedKey(logit) >= s.top_k_key) mass += expf(logit - s.row_max);
  }
  const float target = static_cast<float>(top_p * BlockSumDouble(mass));
  auto by_mass = [s](int i, uint32_t* key, float* metric) {
    const float logit = s.Tempered(i);
    *key = OrderedKey(logit);
    *metric = expf(logit - s.row_max);
    return *key >= s.top_k_key;
  };
  const Selected cut = RadixSelect(s.vocab, by_mass, target, hist);
  s.top_p_key = cut.key;
  // Tokens tied at the cut stay in id order while the mass above them is below the target.
  const float tie_weight = expf(FromOrderedKey(cut.key) - s.row_max);
  const float ties_kept = ceilf((target - cut.above) / tie_weight);
  if (ties_kept >= rintf(cut.at / tie_weight)) return;
  auto by_id = [s](int i, uint32_t* key, float* metric) {
    *key = ~static_cast<uint32_t>(i);  // larger key, smaller id
    *metric = 1.f;
    return OrderedKey(s.Tempered(i)) == s.top_p_key;
  };
  s.top_p_last_id = static_cast<int>(~RadixSelect(s.vocab, by_id, fmaxf(ties_kept, 1.f), hist).key);
}

// The first kept id at which the cumulative weight in id order exceeds u * total. Each warp owns a contiguous
// range of ids; the warp whose range holds the crossing walks it 32 ids at a time.
__device__ int DrawInverseCdf(const RowSampler& s, double uniform) {
  __shared__ double warp_mass[kWarps];
  __shared__ int warp_last[kWarps];
  __shared__ int chosen;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int span = (s.vocab + kWarps - 1) / kWarps;
  const int begin = warp * span, end = min(s.vocab, begin + span);
  double mass = 0.0;
  int last = -1;
  for (int i = begin + lane; i < end; i += 32) {
    const float w = s.Weight(i);
    mass += w;
    if (w > 0.f) last = i;
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    mass += __shfl_xor_sync(0xffffffffu, mass, offset);
    last = max(last, __shfl_xor_sync(0xffffffffu, last, offset));
  }
  if (lane == 0) warp_mass[warp] = mass, warp_last[warp] = last;
  if (threadIdx.x == 0) chosen = -1;
  __syncthreads();
  double total = 0.0, base = 0.0;
  int owner = -1, fallback = -1;
  for (int w = 0; w < kWarps; ++w) total += warp_mass[w];
  const double target = uniform * total;
  for (int w = 0; w < kWarps && owner < 0; ++w) {
    if (warp_last[w] >= 0) fallback = warp_last[w];
    if (base + warp_mass[w] > target && warp_mass[w] > 0.0)
      owner = w;
    else
      base += warp_mass[w];
  }
  if (warp == owner) {
    for (int start = begin; start < end && chosen < 0; start += 32) {
      const int i = start + lane;
      const float w = i < end ? s.Weight(i) : 0.f;
      double cumulative = w;
      for (int offset = 1; offset < 32; offset <<= 1) {
        const double other = __shfl_up_sync(0xffffffffu, cumulative, offset);
        if (lane >= offset) cumulative += other;
      }
      const unsigned crossed = __ballot_sync(0xffffffffu, w > 0.f && base + cumulative > target);
      if (crossed != 0 && lane == 0) chosen = start + __ffs(crossed) - 1;
      base += __shfl_sync(0xffffffffu, cumulative, 31);
      __syncwarp();
    }
  }
  __syncthreads();
  return chosen >= 0 ? chosen : fallback;  // fallback: rounding left the total a hair below the target
}

static __global__ void __launch_bounds__(kThreads)
    SampleKernel(const float* __restrict__ logits,  // [num_rows, vocab]
                 SamplingParams params,
                 int32_t* __restrict__ out,  // [num_rows]
                 int vocab) {
  __shared__ float hist[kMaxBins];
  const int r = blockIdx.x;
  const float* row = logits + static_cast<int64_t>(r) * vocab;
  const float temperature = params.temperature[r];
  if (!(temperature > 0.f)) {
    const int index = RowArgmax(row, vocab);
    if (threadIdx.x == 0) out[r] = index;
    return;
  }
  RowSampler s{row, vocab, temperature};
  float local_max = -INFINITY;
  for (int i = threadIdx.x; i < vocab; i += kThreads) local_max = fmaxf(local_max, s.Tempered(i));
  s.row_max = BlockMax(local_max);
  ApplyTopK(s, params.top_k[r], hist);
  ApplyTopP(s, params.top_p[r], hist);
  if (params.min_p[r] > 0.f) s.min_logit = s.row_max + log(static_cast<double>(params.min_p[r]));
  const int index = DrawInverseCdf(s, SeededUniform(params.seed[r], params.step[r]));
  if (threadIdx.x == 0) out[r] = index;
}

}  // namespace

void ArgmaxRows(const float* logits, int32_t* out, int num_rows, int vocab, cudaStream_t stream) {
  if (num_rows == 0) return;
  ArgmaxKernel<<<num_rows, kThreads, 0, stream>>>(logits, out, vocab);
  CUDA_CHECK_LAUNCH();
}

void SampleRows(const float* logits, const SamplingParams& params, int32_t* out, int num_rows, int vocab,
                cudaStream_t stream) {
  if (num_rows == 0) return;
  SampleKernel<<<num_rows, kThreads, 0, stream>>>(logits, params, out, vocab);
  CUDA_CHECK_LAUNCH();
}

}  // namespace doze::kernels

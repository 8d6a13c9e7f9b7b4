#include <algorithm>
#include <cfloat>
#include <climits>
#include <cstddef>

#include "kernels/argmax.cuh"
#include "kernels/cuda_check.h"
#include "kernels/sampling.h"
#include "kernels/vec.cuh"

namespace doze::kernels {
namespace {

constexpr int kThreads = 1024;  // SampleKernel and its block-wide helpers assume exactly this block size
constexpr int kWarps = kThreads / 32;
constexpr int kBinsPerThread = 4;
constexpr int kMaxBins = kThreads * kBinsPerThread;  // 12 bits per radix round
constexpr int kMaxCandidates = kMaxBins / 2;         // gathered (logit, id) pairs that fit the bins' memory

// Maps a float to an unsigned key with the same order, so thresholds can be found digit by digit.
__device__ __forceinline__ uint32_t OrderedKey(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float FromOrderedKey(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

constexpr int kArgmaxParts = 64;  // slices of a row in the first argmax pass
constexpr int kArgmaxThreads = 256;
constexpr int kArgmaxLoads = 12;  // values of its slice a thread loads at once

// Grid (kArgmaxParts, num_rows): the best (value, index) of one slice of each row, so that a row's argmax is
// spread over 64 multiprocessors instead of one.
static __global__ void __launch_bounds__(kArgmaxThreads)
    ArgmaxPartsKernel(const float* __restrict__ logits,  // [num_rows, vocab]
                      Best* __restrict__ parts,          // [num_rows, kArgmaxParts]
                      int vocab) {
  const int slice = (vocab + kArgmaxParts - 1) / kArgmaxParts;
  const int begin = blockIdx.x * slice, end = min(vocab, begin + slice);
  const float* row = logits + static_cast<int64_t>(blockIdx.y) * vocab;
  Best best = NoBest();
  // A thread's values of the slice (10 at Qwen's vocabulary) are loaded together before they are compared:
  // one round trip for slices of up to kArgmaxLoads * kArgmaxThreads values.
  for (int first = begin + threadIdx.x; first < end; first += kArgmaxLoads * kArgmaxThreads) {
    float values[kArgmaxLoads];
#pragma unroll
    for (int j = 0; j < kArgmaxLoads; ++j) {
      const int i = first + j * kArgmaxThreads;
      values[j] = i < end ? row[i] : -INFINITY;
    }
#pragma unroll
    for (int j = 0; j < kArgmaxLoads; ++j) {
      const int i = first + j * kArgmaxThreads;
      if (i < end) best = Better(best, Best{values[j], i});
    }
  }
  best = BlockArgmax(best);
  if (threadIdx.x == 0) parts[blockIdx.y * kArgmaxParts + blockIdx.x] = best;
}

// The row's argmax from its slices' bests (lowest index on ties, as the slices are in index order).
__device__ int ArgmaxOfParts(const Best* row_parts) {
  const Best mine = threadIdx.x < kArgmaxParts ? row_parts[threadIdx.x] : NoBest();
  return TokenOf(BlockArgmax(mine));
}

static __global__ void ArgmaxKernel(const Best* __restrict__ parts,  // [num_rows, kArgmaxParts]
                                    int32_t* __restrict__ out) {     // [num_rows]
  const int index = ArgmaxOfParts(parts + blockIdx.x * kArgmaxParts);
  if (threadIdx.x == 0) out[blockIdx.x] = index;
}

void LaunchArgmaxParts(const float* logits, void* workspace, int num_rows, int vocab, cudaStream_t stream) {
  ArgmaxPartsKernel<<<dim3(kArgmaxParts, num_rows), kArgmaxThreads, 0, stream>>>(
      logits, static_cast<Best*>(workspace), vocab);
  CUDA_CHECK_LAUNCH();
}

// Which of a row's filters are on: top-k, top-p (when no top-k: under top-k the list holds the top-k mass)
// and any at all (with min-p).
struct Filters {
  bool use_k, use_p, any;
};

__device__ __forceinline__ Filters FiltersOf(int top_k, float top_p, float min_p, int vocab) {
  const bool use_k = top_k > 0 && top_k < vocab, use_p = !use_k && top_p < 1.f;
  return Filters{use_k, use_p, UsesSamplingFilters(top_k, top_p, min_p, vocab)};
}

__device__ __forceinline__ Filters RowFilters(const SamplingParams& p, int r, int vocab) {
  return FiltersOf(p.top_k[r], p.top_p[r], p.min_p[r], vocab);
}

// Whether row r samples with its temperature alone (no top-k, top-p or min-p): its draw then needs only the
// weights' sums, which SliceMassKernel spreads over the row's slices.
__device__ __forceinline__ bool TemperatureAlone(const SamplingParams& p, int r, int vocab) {
  return p.temperature[r] > 0.f && !RowFilters(p, r, vocab).any;
}

// Whether row r samples through top-k, top-p or min-p: its candidates are bounded over the row's slices first
// (SliceBoundKernel, RowBoundKernel, SliceGatherKernel).
__device__ __forceinline__ bool Filtered(const SamplingParams& p, int r, int vocab) {
  return p.temperature[r] > 0.f && RowFilters(p, r, vocab).any;
}

// The row's largest tempered logit, from its slices' bests: max_i fl(l_i / t) is fl(max_i l_i / t), the
// division being monotonic.
__device__ __forceinline__ float TemperedMaxOfParts(const Best* row_parts, float temperature) {
  __shared__ float row_max;
  if (threadIdx.x < 32) {
    float v = -INFINITY;
    for (int s = threadIdx.x; s < kArgmaxParts; s += 32) v = fmaxf(v, row_parts[s].value);
    v = WarpMax(v);
    if (threadIdx.x == 0) row_max = v / temperature;
  }
  __syncthreads();
  return row_max;
}

// The sum of the kArgmaxThreads threads' `v` (warps, then their totals, in a fixed order) into *dst.
__device__ __forceinline__ void WriteSliceSum(double v, double* dst) {
  __shared__ double warp_sums[kArgmaxThreads / 32];
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (int w = 0; w < kArgmaxThreads / 32; ++w) total += warp_sums[w];
    *dst = total;
  }
}

// Grid (kArgmaxParts, num_rows), rows that sample with the temperature alone: the sum over the slice of
// exp(l / t - max), in double, for the draw's prefix over slices (DrawFromSlices).
static __global__ void __launch_bounds__(kArgmaxThreads)
    SliceMassKernel(const float* __restrict__ logits,  // [num_rows, vocab]
                    const Best* __restrict__ parts,    // [num_rows, kArgmaxParts], from ArgmaxPartsKernel
                    SamplingParams params,
                    double* __restrict__ masses,  // [num_rows, kArgmaxParts]
                    int vocab) {
  const int r = blockIdx.y;
  if (!TemperatureAlone(params, r, vocab)) return;
  const float temperature = params.temperature[r];
  const float row_max = TemperedMaxOfParts(parts + r * kArgmaxParts, temperature);
  const int slice = (vocab + kArgmaxParts - 1) / kArgmaxParts;
  const int begin = blockIdx.x * slice, end = min(vocab, begin + slice);
  const float* row = logits + static_cast<int64_t>(r) * vocab;
  double mass = 0.0;
  for (int first = begin + threadIdx.x; first < end; first += kArgmaxLoads * kArgmaxThreads) {
    float values[kArgmaxLoads];
#pragma unroll
    for (int j = 0; j < kArgmaxLoads; ++j) {
      const int i = first + j * kArgmaxThreads;
      values[j] = i < end ? row[i] : 0.f;
    }
#pragma unroll
    for (int j = 0; j < kArgmaxLoads; ++j) {
      if (first + j * kArgmaxThreads < end) mass += expf(values[j] / temperature - row_max);
    }
  }
  WriteSliceSum(mass, masses + r * kArgmaxParts + blockIdx.x);
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

// The tokens of one row as the selections see them: position j holds token Id(j) with tempered logit
// Logit(j).
struct RowSource {
  const float* row;  // [vocab]
  int size;
  float temperature;
  __device__ float Logit(int j) const { return row[j] / temperature; }
  __device__ int Id(int j) const { return j; }
};

// The candidates gathered into shared memory, in no particular order.
struct ListSource {
  const float* logits;  // [size] tempered
  const int* ids;       // [size]
  int size;
  __device__ float Logit(int j) const { return logits[j]; }
  __device__ int Id(int j) const { return ids[j]; }
};

// The thresholds that decide which tokens may be drawn.
struct Thresholds {
  float row_max;           // of the tempered logits
  uint32_t top_k_key = 0;  // tokens need key >= this
  uint32_t top_p_key = 0;  // ... and key > this, or key == this and id <= top_p_last_id
  int top_p_last_id = INT_MAX;
  double min_logit = -INFINITY;  // ... and a tempered logit >= this

  __device__ bool Kept(int id, float logit) const {
    const uint32_t key = OrderedKey(logit);
    return key >= top_k_key && (key > top_p_key || (key == top_p_key && id <= top_p_last_id)) &&
           static_cast<double>(logit) >= min_logit;
  }
  // exp(logit - max) for a kept token, 0 otherwise: the draw's weight.
  __device__ float Weight(int id, float logit) const { return Kept(id, logit) ? expf(logit - row_max) : 0.f; }
};

template <typename Source>
__device__ void ApplyTopK(const Source& src, int top_k, int vocab, Thresholds& t, float* hist) {
  if (top_k <= 0 || top_k >= vocab) return;
  auto token = [src](int j, uint32_t* key, float* metric) {
    *key = OrderedKey(src.Logit(j));
    *metric = 1.f;
    return true;
  };
  t.top_k_key = RadixSelect(src.size, token, static_cast<float>(top_k), hist).key;
}

// Keeps tokens in most-likely-first order while the mass above them is below p of the top-k mass. `mass`,
// when >= 0, is that mass already summed over the whole row.
template <typename Source>
__device__ void ApplyTopP(const Source& src, float top_p, double mass, Thresholds& t, float* hist) {
  if (top_p >= 1.f) return;
  if (mass < 0.0) {
    double local = 0.0;
    for (int j = threadIdx.x; j < src.size; j += kThreads) {
      const float logit = src.Logit(j);
      if (OrderedKey(logit) >= t.top_k_key) local += expf(logit - t.row_max);
    }
    mass = BlockSumDouble(local);
  }
  const float target = static_cast<float>(top_p * mass);
  const Thresholds k = t;
  auto by_mass = [src, k](int j, uint32_t* key, float* metric) {
    const float logit = src.Logit(j);
    *key = OrderedKey(logit);
    *metric = expf(logit - k.row_max);
    return *key >= k.top_k_key;
  };
  const Selected cut = RadixSelect(src.size, by_mass, target, hist);
  t.top_p_key = cut.key;
  // Tokens tied at the cut stay in id order while the mass above them is below the target.
  const float tie_weight = expf(FromOrderedKey(cut.key) - t.row_max);
  const float ties_kept = ceilf((target - cut.above) / tie_weight);
  if (ties_kept >= rintf(cut.at / tie_weight)) return;
  const uint32_t cut_key = cut.key;
  auto by_id = [src, cut_key](int j, uint32_t* key, float* metric) {
    *key = ~static_cast<uint32_t>(src.Id(j));  // larger key, smaller id
    *metric = 1.f;
    return OrderedKey(src.Logit(j)) == cut_key;
  };
  t.top_p_last_id = static_cast<int>(~RadixSelect(src.size, by_id, fmaxf(ties_kept, 1.f), hist).key);
}

// The first kept id at which the cumulative weight in id order exceeds u * total. Each warp owns a contiguous
// range of ids; the warp whose range holds the crossing walks it 32 ids at a time.
__device__ int DrawFromRow(const RowSource& src, const Thresholds& t, double uniform) {
  __shared__ double warp_mass[kWarps];
  __shared__ int warp_last[kWarps];
  __shared__ int chosen;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int span = (src.size + kWarps - 1) / kWarps;
  const int begin = warp * span, end = min(src.size, begin + span);
  double mass = 0.0;
  int last = -1;
  for (int i = begin + lane; i < end; i += 32) {
    const float w = t.Weight(i, src.Logit(i));
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
    if (base + warp_mass[w] > target && warp_mass[w] > 0.0) {
      owner = w;
    } else {
      base += warp_mass[w];
    }
  }
  if (warp == owner) {
    for (int start = begin; start < end && chosen < 0; start += 32) {
      const int i = start + lane;
      const float w = i < end ? t.Weight(i, src.Logit(i)) : 0.f;
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

// The same draw over gathered candidates: the smallest id whose cumulative weight (ids <= it) reaches u *
// total, found by a radix select over ids weighted by mass.
__device__ int DrawFromList(const ListSource& src, const Thresholds& t, double uniform, float* hist) {
  double local = 0.0;
  for (int j = threadIdx.x; j < src.size; j += kThreads) local += t.Weight(src.Id(j), src.Logit(j));
  const double total = BlockSumDouble(local);
  auto by_id = [src, t](int j, uint32_t* key, float* metric) {
    *key = ~static_cast<uint32_t>(src.Id(j));
    *metric = t.Weight(src.Id(j), src.Logit(j));
    return *metric > 0.f;
  };
  return static_cast<int>(~RadixSelect(src.size, by_id, static_cast<float>(uniform * total), hist).key);
}

// The draw of a row sampled with its temperature alone, from its slices' masses (SliceMassKernel): the slice
// where the cumulative mass crosses u * total, then the first id in it whose cumulative weight does (each
// thread takes kIdsPerThread ids of a chunk, a block-wide prefix sum orders them). DrawFromRow's choice, with
// the sums in another order.
__device__ int DrawFromSlices(const RowSource& src, float row_max, const double* slice_masses,
                              double uniform) {
  constexpr int kIdsPerThread = 3;
  __shared__ double cumulative[kArgmaxParts];
  __shared__ double warp_totals[kWarps];
  __shared__ int slice_chosen, chosen, last_id;
  __shared__ double target, slice_base;
  if (threadIdx.x < kArgmaxParts) cumulative[threadIdx.x] = slice_masses[threadIdx.x];
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (int s = 0; s < kArgmaxParts; ++s) total += cumulative[s];
    target = uniform * total;
    double base = 0.0;
    int found = -1, last = 0;
    for (int s = 0; s < kArgmaxParts && found < 0; ++s) {
      if (cumulative[s] > 0.0) last = s;
      if (cumulative[s] > 0.0 && base + cumulative[s] > target) {
        found = s;
      } else {
        base += cumulative[s];
      }
    }
    slice_chosen = found >= 0 ? found : last;  // none: rounding left the total a hair below the target
    slice_base = found >= 0 ? base : base - cumulative[last];
    chosen = INT_MAX;
    last_id = -1;
  }
  __syncthreads();
  const int slice = (src.size + kArgmaxParts - 1) / kArgmaxParts;
  const int begin = slice_chosen * slice, end = min(src.size, begin + slice);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  double base = slice_base;
  for (int chunk = begin; chunk < end; chunk += kThreads * kIdsPerThread) {
    const int first = chunk + threadIdx.x * kIdsPerThread;
    float w[kIdsPerThread];
    double local = 0.0;
#pragma unroll
    for (int j = 0; j < kIdsPerThread; ++j) {
      w[j] = first + j < end ? expf(src.Logit(first + j) - row_max) : 0.f;
      local += w[j];
    }
    // Exclusive prefix of the threads' sums: within the warp by shuffles, then over the warps' totals.
    double inclusive = local;
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
      const double other = __shfl_up_sync(0xffffffffu, inclusive, offset);
      if (lane >= offset) inclusive += other;
    }
    if (lane == 31) warp_totals[warp] = inclusive;
    __syncthreads();
    double running = base + inclusive - local;
    for (int v = 0; v < warp; ++v) running += warp_totals[v];
#pragma unroll
    for (int j = 0; j < kIdsPerThread; ++j) {
      running += w[j];
      if (w[j] > 0.f) {
        atomicMax(&last_id, first + j);
        if (running > target) {
          atomicMin(&chosen, first + j);
          break;
        }
      }
    }
    for (int v = 0; v < kWarps; ++v) base += warp_totals[v];
    __syncthreads();
    if (chosen != INT_MAX) return chosen;
  }
  // The slice's own sum fell a hair short of the crossing: its last weighted id.
  return last_id >= 0 ? last_id : begin;
}

// A key below which no token can survive the row's filters (from round-one histograms of counts and, for
// top-p without top-k, of mass), and how many tokens lie at or above it; INT_MAX tokens when no filter is on.
struct CandidateBound {
  uint32_t min_bin;  // of key >> 20
  int count;
  double mass;  // the whole row's exp(logit - max), when top-p without top-k needed it; else -1
};

// The bound from the row's round-one histograms in shared memory: `counts` of every token's key >> 20 and,
// for top-p without top-k, `masses` with their total `mass`.
__device__ CandidateBound BoundFromHistograms(const Thresholds& t, const Filters& f, int top_k, float top_p,
                                              float min_p, const float* counts, const float* masses,
                                              double mass) {
  uint32_t min_bin = 0;
  if (f.use_k) min_bin = PickBin(counts, kMaxBins, static_cast<float>(top_k)).key;
  if (f.use_p) {
    const uint32_t bin = PickBin(masses, kMaxBins, static_cast<float>(top_p * mass)).key;
    min_bin = bin > 0 ? bin - 1 : 0;  // one bin of margin for the rounding of float sums
  }
  if (min_p > 0.f && !(top_p < 1.f)) {  // under top-p the list must hold the whole top-k mass
    float floor_logit = static_cast<float>(t.min_logit);
    if (static_cast<double>(floor_logit) > t.min_logit) floor_logit = nextafterf(floor_logit, -INFINITY);
    min_bin = max(min_bin, OrderedKey(floor_logit) >> 20);
  }
  float above = 0.f;
  for (int b = threadIdx.x; b < kMaxBins; b += kThreads)
    above += b >= static_cast<int>(min_bin) ? counts[b] : 0.f;
  __shared__ float scratch[kWarps];
  const int count = static_cast<int>(BlockSum(above, scratch));
  return CandidateBound{min_bin, count, f.use_p ? mass : -1.0};
}

// Adds the thread's tokens j = first, first + stride, ... < end to the round-one histograms: `counts` of
// every token's key >> 20 and, with `use_p`, `masses` of exp(logit - row_max); returns the thread's mass.
__device__ __forceinline__ double AddToHistograms(const RowSource& src, int first, int end, int stride,
                                                  float row_max, bool use_p, float* counts, float* masses) {
  double local = 0.0;
  for (int j = first; j < end; j += stride) {
    const float logit = src.Logit(j);
    const uint32_t bin = OrderedKey(logit) >> 20;
    atomicAdd(&counts[bin], 1.f);
    if (use_p) {
      const float w = expf(logit - row_max);
      local += w;
      atomicAdd(&masses[bin], w);
    }
  }
  return local;
}

// BoundCandidates in one block: the histograms from one pass over the row.
__device__ CandidateBound BoundCandidates(const RowSource& src, const Thresholds& t, int top_k, float top_p,
                                          float min_p, float* counts, float* masses) {
  const Filters f = FiltersOf(top_k, top_p, min_p, src.size);
  if (!f.any) return CandidateBound{0, INT_MAX, -1.0};
  for (int b = threadIdx.x; b < kMaxBins; b += kThreads) counts[b] = 0.f, masses[b] = 0.f;
  __syncthreads();
  const double local =
      AddToHistograms(src, threadIdx.x, src.size, kThreads, t.row_max, f.use_p, counts, masses);
  const double mass = f.use_p ? BlockSumDouble(local) : -1.0;
  __syncthreads();
  return BoundFromHistograms(t, f, top_k, top_p, min_p, counts, masses, mass);
}

// Copies the tokens with key >> 20 >= min_bin into the list; returns how many.
__device__ int Gather(const RowSource& src, uint32_t min_bin, float* logits, int* ids) {
  __shared__ int size;
  if (threadIdx.x == 0) size = 0;
  __syncthreads();
  for (int j = threadIdx.x; j < src.size; j += kThreads) {
    const float logit = src.Logit(j);
    if ((OrderedKey(logit) >> 20) < min_bin) continue;
    const int slot = atomicAdd(&size, 1);
    logits[slot] = logit;
    ids[slot] = j;
  }
  __syncthreads();
  return size;
}

// Candidates a row may gather over its slices: up to kMaxCandidates the list work runs in shared memory,
// beyond (a flat row's nucleus) on the list where it was gathered, still a fraction of the row.
constexpr int kMaxGatheredCandidates = 32768;

// A filtered row's scratch in the workspace, zeroed before each SampleRows: the round-one histograms merged
// over its slices, its candidate bound, and the gathered candidates.
struct RowScratch {
  float counts[kMaxBins];  // tokens per key >> 20
  float masses[kMaxBins];  // exp(logit - max) per key >> 20 (top-p without top-k)
  CandidateBound bound;
  int list_size;
  float list_logits[kMaxGatheredCandidates];  // tempered, in no particular order (zeroing ends before them)
  int list_ids[kMaxGatheredCandidates];
};

// Grid (kArgmaxParts, num_rows), filtered rows: the slice's round-one histograms (as BoundCandidates builds
// them) added into the row's scratch, and for top-p its mass (double) into slice_masses.
static __global__ void __launch_bounds__(kArgmaxThreads)
    SliceBoundKernel(const float* __restrict__ logits,  // [num_rows, vocab]
                     const Best* __restrict__ parts,    // [num_rows, kArgmaxParts], from ArgmaxPartsKernel
                     SamplingParams params,
                     RowScratch* __restrict__ scratch,   // [num_rows]
                     double* __restrict__ slice_masses,  // [num_rows, kArgmaxParts]
                     int vocab) {
  const int r = blockIdx.y;
  if (!Filtered(params, r, vocab)) return;
  __shared__ float counts[kMaxBins], masses[kMaxBins];
  const Filters f = RowFilters(params, r, vocab);
  const RowSource src{logits + static_cast<int64_t>(r) * vocab, vocab, params.temperature[r]};
  for (int b = threadIdx.x; b < kMaxBins; b += kArgmaxThreads) counts[b] = 0.f, masses[b] = 0.f;
  const float row_max = TemperedMaxOfParts(parts + r * kArgmaxParts, src.temperature);  // ends in a barrier
  const int slice = (vocab + kArgmaxParts - 1) / kArgmaxParts;
  const int begin = blockIdx.x * slice, end = min(vocab, begin + slice);
  const double local =
      AddToHistograms(src, begin + threadIdx.x, end, kArgmaxThreads, row_max, f.use_p, counts, masses);
  __syncthreads();
  RowScratch& row = scratch[r];
  for (int b = threadIdx.x; b < kMaxBins; b += kArgmaxThreads) {
    if (counts[b] != 0.f) atomicAdd(&row.counts[b], counts[b]);
    if (masses[b] != 0.f) atomicAdd(&row.masses[b], masses[b]);
  }
  if (f.use_p) WriteSliceSum(local, slice_masses + r * kArgmaxParts + blockIdx.x);
}

// One block a filtered row: its candidate bound from the merged histograms (BoundFromHistograms), the mass
// summed over the slices in order.
static __global__ void __launch_bounds__(kThreads)
    RowBoundKernel(const Best* __restrict__ parts,  // [num_rows, kArgmaxParts]
                   SamplingParams params,
                   RowScratch* __restrict__ scratch,         // [num_rows]
                   const double* __restrict__ slice_masses,  // [num_rows, kArgmaxParts]
                   int vocab) {
  const int r = blockIdx.x;
  if (!Filtered(params, r, vocab)) return;
  __shared__ float counts[kMaxBins], masses[kMaxBins];
  const Filters f = RowFilters(params, r, vocab);
  RowScratch& row = scratch[r];
  for (int b = threadIdx.x; b < kMaxBins; b += kThreads) counts[b] = row.counts[b], masses[b] = row.masses[b];
  Thresholds t;
  t.row_max = TemperedMaxOfParts(parts + r * kArgmaxParts, params.temperature[r]);  // ends in a barrier
  const float min_p = params.min_p[r];
  if (min_p > 0.f) t.min_logit = t.row_max + log(static_cast<double>(min_p));
  double mass = -1.0;
  if (f.use_p) {
    mass = 0.0;
    for (int s = 0; s < kArgmaxParts; ++s) mass += slice_masses[r * kArgmaxParts + s];
  }
  const CandidateBound bound =
      BoundFromHistograms(t, f, params.top_k[r], params.top_p[r], min_p, counts, masses, mass);
  if (threadIdx.x == 0) row.bound = bound;
}

// Grid (kArgmaxParts, num_rows), filtered rows whose candidates fit the list: the slice's tokens at or above
// the bound appended to the row's list.
static __global__ void __launch_bounds__(kArgmaxThreads)
    SliceGatherKernel(const float* __restrict__ logits,  // [num_rows, vocab]
                      SamplingParams params,
                      RowScratch* __restrict__ scratch,  // [num_rows]
                      int vocab) {
  const int r = blockIdx.y;
  if (!Filtered(params, r, vocab)) return;
  RowScratch& row = scratch[r];
  const CandidateBound bound = row.bound;
  if (bound.count > kMaxGatheredCandidates) return;
  const RowSource src{logits + static_cast<int64_t>(r) * vocab, vocab, params.temperature[r]};
  const int slice = (vocab + kArgmaxParts - 1) / kArgmaxParts;
  const int begin = blockIdx.x * slice, end = min(vocab, begin + slice);
  for (int j = begin + threadIdx.x; j < end; j += kArgmaxThreads) {
    const float logit = src.Logit(j);
    if ((OrderedKey(logit) >> 20) < bound.min_bin) continue;
    const int slot = atomicAdd(&row.list_size, 1);
    row.list_logits[slot] = logit;
    row.list_ids[slot] = j;
  }
}

static __global__ void __launch_bounds__(kThreads)
    SampleKernel(const float* __restrict__ logits,   // [num_rows, vocab]
                 const Best* __restrict__ parts,     // [num_rows, kArgmaxParts], from ArgmaxPartsKernel
                 const double* __restrict__ masses,  // [num_rows, kArgmaxParts] from SliceMassKernel, or null
                 const RowScratch* __restrict__ scratch,  // [num_rows] from RowBoundKernel..., or null
                 SamplingParams params,
                 int32_t* __restrict__ out,  // [num_rows]
                 int vocab) {
  __shared__ float hist[kMaxBins];
  __shared__ float pool[kMaxBins];  // round-one counts, then the candidate list
  const int r = blockIdx.x;
  const float* row = logits + static_cast<int64_t>(r) * vocab;
  const float temperature = params.temperature[r];
  if (!(temperature > 0.f)) {
    const int index = ArgmaxOfParts(parts + r * kArgmaxParts);
    if (threadIdx.x == 0) out[r] = index;
    return;
  }
  const RowSource src{row, vocab, temperature};
  const float row_max = TemperedMaxOfParts(parts + r * kArgmaxParts, temperature);  // no pass over the row
  if (masses != nullptr && TemperatureAlone(params, r, vocab)) {
    const int index = DrawFromSlices(src, row_max, masses + r * kArgmaxParts,
                                     SeededUniform(params.seed[r], params.step[r]));
    if (threadIdx.x == 0) out[r] = index;
    return;
  }
  Thresholds t;
  t.row_max = row_max;
  const int top_k = params.top_k[r];
  const float top_p = params.top_p[r], min_p = params.min_p[r];
  if (min_p > 0.f) t.min_logit = t.row_max + log(static_cast<double>(min_p));
  const double uniform = SeededUniform(params.seed[r], params.step[r]);
  const bool gathered = scratch != nullptr && Filtered(params, r, vocab);  // bounded over the slices
  const CandidateBound bound =
      gathered ? scratch[r].bound : BoundCandidates(src, t, top_k, top_p, min_p, pool, hist);
  int index;
  if (bound.count <= (gathered ? kMaxGatheredCandidates : kMaxCandidates)) {
    float* list_logits = pool;
    int* list_ids = reinterpret_cast<int*>(pool + kMaxCandidates);
    ListSource list{list_logits, list_ids, 0};
    if (gathered && bound.count > kMaxCandidates) {  // too many for shared memory: where they were gathered
      list = ListSource{scratch[r].list_logits, scratch[r].list_ids, scratch[r].list_size};
    } else if (gathered) {  // gathered over the slices: into shared memory
      list.size = scratch[r].list_size;
      for (int j = threadIdx.x; j < list.size; j += kThreads)
        list_logits[j] = scratch[r].list_logits[j], list_ids[j] = scratch[r].list_ids[j];
      __syncthreads();
    } else {
      list.size = Gather(src, bound.min_bin, list_logits, list_ids);
    }
    ApplyTopK(list, top_k, vocab, t, hist);
    ApplyTopP(list, top_p, top_k > 0 && top_k < vocab ? -1.0 : bound.mass, t, hist);
    index = DrawFromList(list, t, uniform, hist);
  } else {
    ApplyTopK(src, top_k, vocab, t, hist);
    ApplyTopP(src, top_p, -1.0, t, hist);
    index = DrawFromRow(src, t, uniform);
  }
  if (threadIdx.x == 0) out[r] = index;
}

static __global__ void ApplyLogitEditsKernel(float* __restrict__ logits,           // [rows, vocab]
                                             const LogitEdit* __restrict__ edits,  // [num_edits]
                                             int num_edits, int vocab) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= num_edits) return;
  const LogitEdit e = edits[i];
  float& logit = logits[static_cast<int64_t>(e.row) * vocab + e.token_id];
  float v = logit;
  if (e.bias != 0.f) v += e.bias;
  if (e.repetition != 1.f) v = v > 0.f ? v / e.repetition : v * e.repetition;
  if (e.subtract != 0.f) v -= e.subtract;
  logit = v;
}

}  // namespace

void ApplyLogitEdits(float* logits, const LogitEdit* edits, int num_edits, int vocab, cudaStream_t stream) {
  if (num_edits == 0) return;
  constexpr int kEditThreads = 256;
  ApplyLogitEditsKernel<<<(num_edits + kEditThreads - 1) / kEditThreads, kEditThreads, 0, stream>>>(
      logits, edits, num_edits, vocab);
  CUDA_CHECK_LAUNCH();
}

size_t SamplingWorkspaceBytes(int num_rows) {
  return static_cast<size_t>(std::max(num_rows, 0)) *
         (kArgmaxParts * (sizeof(Best) + sizeof(double)) + sizeof(RowScratch));
}

void ArgmaxRows(const float* logits, int32_t* out, void* workspace, int num_rows, int vocab,
                cudaStream_t stream) {
  if (num_rows == 0) return;
  LaunchArgmaxParts(logits, workspace, num_rows, vocab, stream);
  ArgmaxKernel<<<num_rows, kArgmaxParts, 0, stream>>>(static_cast<const Best*>(workspace), out);
  CUDA_CHECK_LAUNCH();
}

void SampleRows(const float* logits, const SamplingParams& params, int32_t* out, void* workspace,
                int num_rows, int vocab, cudaStream_t stream) {
  if (num_rows == 0) return;
  LaunchArgmaxParts(logits, workspace, num_rows, vocab, stream);
  const Best* parts = static_cast<const Best*>(workspace);
  // [num_rows, kArgmaxParts]: the temperature-alone rows' slice sums, the top-p rows' slice masses.
  double* masses = reinterpret_cast<double*>(static_cast<Best*>(workspace) + num_rows * kArgmaxParts);
  const double* alone_masses = nullptr;
  if (params.any_temperature_alone) {
    SliceMassKernel<<<dim3(kArgmaxParts, num_rows), kArgmaxThreads, 0, stream>>>(logits, parts, params,
                                                                                 masses, vocab);
    CUDA_CHECK_LAUNCH();
    alone_masses = masses;
  }
  RowScratch* scratch = nullptr;
  if (params.any_filtered) {
    scratch = reinterpret_cast<RowScratch*>(masses + num_rows * kArgmaxParts);
    CUDA_CHECK(cudaMemset2DAsync(scratch, sizeof(RowScratch), 0, offsetof(RowScratch, list_logits), num_rows,
                                 stream));  // the histograms and the list's size
    SliceBoundKernel<<<dim3(kArgmaxParts, num_rows), kArgmaxThreads, 0, stream>>>(logits, parts, params,
                                                                                  scratch, masses, vocab);
    RowBoundKernel<<<num_rows, kThreads, 0, stream>>>(parts, params, scratch, masses, vocab);
    SliceGatherKernel<<<dim3(kArgmaxParts, num_rows), kArgmaxThreads, 0, stream>>>(logits, params, scratch,
                                                                                   vocab);
    CUDA_CHECK_LAUNCH();
  }
  SampleKernel<<<num_rows, kThreads, 0, stream>>>(logits, parts, alone_masses, scratch, params, out, vocab);
  CUDA_CHECK_LAUNCH();
}

}  // namespace doze::kernels

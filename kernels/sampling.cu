#include "kernels/cuda_check.h"
#include "kernels/sampling.h"
#include "kernels/vec.cuh"

namespace doze::kernels {
namespace {

constexpr int kThreads = 1024;

// Maps a float to an unsigned key with the same order, so thresholds can be found bit by bit.
__device__ __forceinline__ uint32_t OrderedKey(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
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

__device__ float BlockMax(float v) {
  __shared__ float scratch[32];
  v = WarpMax(v);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
  __syncthreads();
  float total = -INFINITY;
  for (int w = 0; w < (blockDim.x >> 5); ++w) total = fmaxf(total, scratch[w]);
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

// The largest key t with measure(t) >= target, where measure(t) sums weight(x) over the row's x with key >= t
// and falls as t grows. weight(x) = 1 counts tokens (top-k); weight(x) = exp((x - max) / T) weighs them
// (top-p).
template <bool kMass>
__device__ uint32_t SearchThreshold(const float* row, int vocab, float row_max, float inv_temp, float target,
                                    float* scratch) {
  uint32_t t = 0;
  for (int bit = 31; bit >= 0; --bit) {
    const uint32_t candidate = t | (1u << bit);
    float measure = 0.f;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
      const float x = row[i];
      if (OrderedKey(x) >= candidate) measure += kMass ? expf((x - row_max) * inv_temp) : 1.f;
    }
    if (BlockSum(measure, scratch) >= target) t = candidate;
  }
  return t;
}

// Sums exp((x - max) / T) over the row's x with key >= t.
__device__ float MassAbove(const float* row, int vocab, float row_max, float inv_temp, uint32_t t,
                           float* scratch) {
  float mass = 0.f;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    if (OrderedKey(row[i]) >= t) mass += expf((row[i] - row_max) * inv_temp);
  }
  return BlockSum(mass, scratch);
}

// The smallest key a token may have and still be sampled, after top-k, top-p and min-p.
__device__ uint32_t KeepThreshold(const float* row, int vocab, float row_max, float inv_temp, int top_k,
                                  float top_p, float min_p, float* scratch) {
  uint32_t t = 0;
  if (top_k > 0 && top_k < vocab) t = SearchThreshold<false>(row, vocab, row_max, inv_temp, top_k, scratch);
  if (top_p < 1.f) {
    const float target = top_p * MassAbove(row, vocab, row_max, inv_temp, t, scratch);
    t = max(t, SearchThreshold<true>(row, vocab, row_max, inv_temp, target, scratch));
  }
  if (min_p > 0.f) t = max(t, OrderedKey(row_max + logf(min_p) / inv_temp));
  return t;
}

static __global__ void SampleKernel(const float* __restrict__ logits,  // [num_rows, vocab]
                                    SamplingParams params,
                                    int32_t* __restrict__ out,  // [num_rows]
                                    int vocab) {
  __shared__ float scratch[32];
  const int r = blockIdx.x;
  const float* row = logits + static_cast<int64_t>(r) * vocab;
  const float temperature = params.temperature[r];
  if (!(temperature > 0.f)) {
    const int index = RowArgmax(row, vocab);
    if (threadIdx.x == 0) out[r] = index;
    return;
  }
  const float inv_temp = 1.f / temperature;
  float local_max = -INFINITY;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) local_max = fmaxf(local_max, row[i]);
  const float row_max = BlockMax(local_max);
  const uint32_t t = KeepThreshold(row, vocab, row_max, inv_temp, params.top_k[r], params.top_p[r],
                                   params.min_p[r], scratch);
  const uint64_t seed = params.seed[r];
  Best best{-INFINITY, 0x7fffffff};
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    if (OrderedKey(row[i]) < t) continue;
    const float gumbel = -logf(-logf(SampleUniform(seed, i)));
    best = Better(best, Best{(row[i] - row_max) * inv_temp + gumbel, i});
  }
  const Best chosen = BlockArgmax(best);
  if (threadIdx.x == 0) out[r] = chosen.index;
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

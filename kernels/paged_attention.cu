#include <algorithm>

#include "kernels/cuda_check.h"
#include "kernels/paged_attention.h"
#include "kernels/pdl.cuh"
#include "kernels/vec.cuh"

namespace doze::kernels {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kChunk = 128;             // keys scored per pass through shared memory
constexpr int kMaxGroup = 8;            // query heads per KV head
constexpr int kTargetBlocks = 2 * 132;  // two blocks per H100 multiprocessor fit (210 registers a thread)
constexpr int kMaxSplits = 64;
constexpr int kMinPartition = 64;  // keys per split the plan aims at, at least
constexpr int kPartitionAlign = 16;

// Keys per split of a row of `context` keys cut into `splits` even parts, rounded up to kPartitionAlign: the
// split kernel and the combine kernel both derive it from the row's own length, so that a graph captured for
// a context bucket splits each row evenly whatever its length.
__device__ __forceinline__ int RowPartition(int context, int splits) {
  const int per_split = (context + splits - 1) / splits;
  return max(kPartitionAlign, (per_split + kPartitionAlign - 1) / kPartitionAlign * kPartitionAlign);
}

// Where the work of one block lies: which query row, KV head and key range.
struct BlockWork {
  int token, kv_head, group, begin, end;
  const int32_t* block_table;  // [max_blocks_per_seq]
};

struct SharedState {
  float scores[kMaxGroup][kChunk];
  float row_max[kMaxGroup], row_sum[kMaxGroup], rescale[kMaxGroup];
};

// Offset of key `key`'s head `kv_head` row in the paged cache.
__device__ __forceinline__ int64_t CacheOffset(const BlockWork& work, const AttentionShape& s, int key) {
  const int64_t block = work.block_table[key / s.block_size];
  return ((block * s.block_size + key % s.block_size) * s.num_kv_heads + work.kv_head) * s.head_dim;
}

// Loads kLoadBatch keys' 16-byte pieces (key c0 + first + (it + b) * stride) before any is used, so their
// memory latencies overlap; keys past the range read as zeros.
template <int kLoadBatch>
__device__ __forceinline__ void LoadKeys(Bf16x8 (&raw)[kLoadBatch], const __nv_bfloat16* cache,
                                         const BlockWork& work, const AttentionShape& s, int key0, int stride,
                                         int sub) {
#pragma unroll
  for (int b = 0; b < kLoadBatch; ++b) {
    const int key = key0 + b * stride;
    raw[b] = key < work.end ? *reinterpret_cast<const Bf16x8*>(cache + CacheOffset(work, s, key) + sub * 8)
                            : Bf16x8{};
  }
}

constexpr int kLoadBatch = 4;

// Phase 1: scores[h][i] = q_h . k_(c0+i) * scale; kLanes lanes share a key, each holding 8 of its dimensions.
template <int kLanes>
__device__ void ScoreChunk(const float (&q)[kMaxGroup][8], const __nv_bfloat16* k_cache,
                           const BlockWork& work, const AttentionShape& s, int c0, SharedState& st) {
  const int lane = threadIdx.x & 31, sub = lane % kLanes;
  constexpr int kStride = kWarps * (32 / kLanes);
  const int first = (threadIdx.x >> 5) * (32 / kLanes) + lane / kLanes;
  for (int i0 = first; i0 < kChunk; i0 += kLoadBatch * kStride) {
    Bf16x8 raw[kLoadBatch];
    LoadKeys<kLoadBatch>(raw, k_cache, work, s, c0 + i0, kStride, sub);
#pragma unroll
    for (int b = 0; b < kLoadBatch; ++b) {
      const int i = i0 + b * kStride;
      float k[8];
      Bf16x8ToFloat(raw[b], k);
#pragma unroll
      for (int h = 0; h < kMaxGroup; ++h) {
        float dot = 0.f;
#pragma unroll
        for (int j = 0; j < 8; ++j) dot = fmaf(q[h][j], k[j], dot);
#pragma unroll
        for (int offset = kLanes / 2; offset > 0; offset >>= 1)
          dot += __shfl_xor_sync(0xffffffffu, dot, offset);
        if (sub == 0 && h < work.group) st.scores[h][i] = c0 + i < work.end ? dot * s.scale : -INFINITY;
      }
    }
  }
}

// Phase 2: online softmax update per head: scores become exp(score - new max); rescale = exp(old max - new
// max).
__device__ void SoftmaxChunk(const BlockWork& work, SharedState& st) {
  const int lane = threadIdx.x & 31;
  for (int h = threadIdx.x >> 5; h < work.group; h += kWarps) {
    float chunk_max = -INFINITY;
    for (int i = lane; i < kChunk; i += 32) chunk_max = fmaxf(chunk_max, st.scores[h][i]);
    const float old_max = st.row_max[h];
    const float new_max = fmaxf(old_max, WarpMax(chunk_max));
    float sum = 0.f;
    for (int i = lane; i < kChunk; i += 32) {
      const float p = expf(st.scores[h][i] - new_max);
      st.scores[h][i] = p;
      sum += p;
    }
    sum = WarpSum(sum);
    __syncwarp();  // every lane has read row_max[h] before lane 0 replaces it
    if (lane == 0) {
      const float rescale = expf(old_max - new_max);
      st.rescale[h] = rescale;
      st.row_sum[h] = st.row_sum[h] * rescale + sum;
      st.row_max[h] = new_max;
    }
  }
}

// Phase 3: acc[h] = acc[h] * rescale[h] + sum_i p[h][i] v_i over this lane's keys and dimensions.
template <int kLanes>
__device__ void AccumulateChunk(float (&acc)[kMaxGroup][8], const __nv_bfloat16* v_cache,
                                const BlockWork& work, const AttentionShape& s, int c0,
                                const SharedState& st) {
  const int lane = threadIdx.x & 31, sub = lane % kLanes;
  constexpr int kKeysPerPass = 32 / kLanes;
#pragma unroll
  for (int h = 0; h < kMaxGroup; ++h) {
    const float r = h < work.group ? st.rescale[h] : 0.f;
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[h][j] *= r;
  }
  constexpr int kStride = kWarps * kKeysPerPass;
  const int first = (threadIdx.x >> 5) * kKeysPerPass + lane / kLanes;
  for (int i0 = first; i0 < kChunk && c0 + i0 < work.end; i0 += kLoadBatch * kStride) {
    Bf16x8 raw[kLoadBatch];
    LoadKeys<kLoadBatch>(raw, v_cache, work, s, c0 + i0, kStride, sub);
#pragma unroll
    for (int b = 0; b < kLoadBatch; ++b) {
      float v[8];
      Bf16x8ToFloat(raw[b], v);
#pragma unroll
      for (int h = 0; h < kMaxGroup; ++h) {
        const float p =
            h < work.group && c0 + i0 + b * kStride < work.end ? st.scores[h][i0 + b * kStride] : 0.f;
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[h][j] = fmaf(p, v[j], acc[h][j]);
      }
    }
  }
}

// Sums acc over the lanes and warps that hold the same dimensions, then writes the normalised row: straight
// to `out` when the block covers the whole context, else as a partial (output, max, sum) for the combine
// kernel.
template <int kHeadDim, int kLanes>
__device__ void WriteResult(float (&acc)[kMaxGroup][8], float (&red)[kWarps][kMaxGroup][kHeadDim],
                            const BlockWork& work, const AttentionShape& s, const SharedState& st,
                            __nv_bfloat16* out, float* workspace) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int h = 0; h < kMaxGroup; ++h) {
#pragma unroll
    for (int j = 0; j < 8; ++j) {
#pragma unroll
      for (int offset = kLanes; offset < 32; offset <<= 1)
        acc[h][j] += __shfl_xor_sync(0xffffffffu, acc[h][j], offset);
      if (lane < kLanes && h < work.group) red[warp][h][lane * 8 + j] = acc[h][j];
    }
  }
  __syncthreads();
  const int splits = gridDim.z;
  for (int e = threadIdx.x; e < work.group * kHeadDim; e += blockDim.x) {
    const int h = e / kHeadDim, d = e % kHeadDim;
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) sum += red[w][h][d];
    const int64_t row = static_cast<int64_t>(work.token) * s.num_q_heads + work.kv_head * work.group + h;
    if (splits == 1) {
      out[row * kHeadDim + d] = __float2bfloat16(sum / st.row_sum[h]);
      continue;
    }
    const int64_t part = row * splits + blockIdx.z;
    workspace[part * kHeadDim + d] = sum / st.row_sum[h];
    if (d == 0) {
      float* max_sum = workspace + static_cast<int64_t>(s.num_tokens) * s.num_q_heads * splits * kHeadDim;
      max_sum[part * 2] = st.row_max[h];
      max_sum[part * 2 + 1] = st.row_sum[h];
    }
  }
}

// Grid (num_tokens, num_kv_heads, splits); the block serves all query heads of its KV head over one key
// range.
template <int kHeadDim>
static __global__ void __launch_bounds__(kThreads) PagedAttentionKernel(
    const __nv_bfloat16* __restrict__ q,        // [num_tokens, q_row_stride]
    const __nv_bfloat16* __restrict__ k_cache,  // [num_blocks, block_size, kv_heads, head_dim]
    const __nv_bfloat16* __restrict__ v_cache,  // [num_blocks, block_size, kv_heads, head_dim]
    const int32_t* __restrict__ block_tables,   // [num_seqs, max_blocks_per_seq]
    const int32_t* __restrict__ token_seq,      // [num_tokens]
    const int32_t* __restrict__ context_lens,   // [num_tokens]
    __nv_bfloat16* __restrict__ out,            // [num_tokens, num_q_heads, head_dim]
    float* __restrict__ workspace,              // partials when gridDim.z > 1
    AttentionShape s) {
  constexpr int kLanes = kHeadDim / 8;
  __shared__ SharedState st;
  __shared__ float red[kWarps][kMaxGroup][kHeadDim];
  BlockWork work{static_cast<int>(blockIdx.x),
                 static_cast<int>(blockIdx.y),
                 s.num_q_heads / s.num_kv_heads,
                 0,
                 0,
                 nullptr};
  // The step's metadata comes from the host before the first kernel: it may be read before the wait.
  const int context = context_lens[work.token];
  const int partition = RowPartition(context, gridDim.z);
  work.begin = blockIdx.z * partition;
  work.end = min(context, work.begin + partition);
  work.block_table = block_tables + static_cast<int64_t>(token_seq[work.token]) * s.max_blocks_per_seq;
  GridDependencyWait();
  LaunchDependents();
  if (work.begin >= work.end) {
    if (gridDim.z == 1) {
      for (int e = threadIdx.x; e < work.group * kHeadDim; e += blockDim.x) {
        out[(static_cast<int64_t>(work.token) * s.num_q_heads + work.kv_head * work.group) * kHeadDim + e] =
            __float2bfloat16(0.f);
      }
    }
    return;
  }
  if (threadIdx.x < kMaxGroup) {
    st.row_max[threadIdx.x] = -INFINITY;
    st.row_sum[threadIdx.x] = 0.f;
  }
  float qv[kMaxGroup][8] = {}, acc[kMaxGroup][8] = {};
  const __nv_bfloat16* q_row = q + static_cast<int64_t>(work.token) * s.q_row_stride;
#pragma unroll
  for (int h = 0; h < kMaxGroup; ++h) {
    if (h < work.group)
      LoadBf16x8(q_row + (work.kv_head * work.group + h) * kHeadDim + (threadIdx.x % kLanes) * 8, qv[h]);
  }
  __syncthreads();
  for (int c0 = work.begin; c0 < work.end; c0 += kChunk) {
    ScoreChunk<kLanes>(qv, k_cache, work, s, c0, st);
    __syncthreads();
    SoftmaxChunk(work, st);
    __syncthreads();
    AccumulateChunk<kLanes>(acc, v_cache, work, s, c0, st);
    __syncthreads();
  }
  WriteResult<kHeadDim, kLanes>(acc, red, work, s, st, out, workspace);
}

// Grid (num_tokens, num_q_heads), one thread per dimension: merges the partial softmaxes of the valid splits.
static __global__ void CombineKernel(const float* __restrict__ workspace,  // partial outputs, then (max, sum)
                                     const int32_t* __restrict__ context_lens,  // [num_tokens]
                                     __nv_bfloat16* __restrict__ out,  // [num_tokens, num_q_heads, head_dim]
                                     int num_tokens, int num_q_heads, int head_dim, int splits) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * num_q_heads + blockIdx.y;
  const int context = context_lens[blockIdx.x];  // host metadata: read before the wait
  GridDependencyWait();
  LaunchDependents();
  const int valid = (context + RowPartition(context, splits) - 1) / RowPartition(context, splits);
  const float* max_sum = workspace + static_cast<int64_t>(num_tokens) * num_q_heads * splits * head_dim;
  float global_max = -INFINITY;
  for (int i = 0; i < valid; ++i) global_max = fmaxf(global_max, max_sum[(row * splits + i) * 2]);
  float total = 0.f, value = 0.f;
  for (int i = 0; i < valid; ++i) {
    const int64_t part = row * splits + i;
    const float weight = max_sum[part * 2 + 1] * expf(max_sum[part * 2] - global_max);
    total += weight;
    value += weight * workspace[part * head_dim + threadIdx.x];
  }
  out[row * head_dim + threadIdx.x] = __float2bfloat16(valid > 0 ? value / total : 0.f);
}

size_t PartialBytes(int num_tokens, int num_q_heads, int head_dim, int splits) {
  return static_cast<size_t>(num_tokens) * num_q_heads * splits * (head_dim + 2) * sizeof(float);
}

// Splits the key range only as far as the grid still fits in one wave of kTargetBlocks (rounding down: a
// second, mostly idle wave costs a whole block's time), at most one split per kMinPartition keys of the
// context bucket, and only as far as the workspace allows.
int PlanSplits(const AttentionShape& s, size_t workspace_bytes) {
  const int max_context = std::max(s.max_context, 1);
  const int rows = s.num_tokens * s.num_kv_heads;
  int splits = std::max(
      1, std::min({kMaxSplits, (max_context + kMinPartition - 1) / kMinPartition, kTargetBlocks / rows}));
  while (splits > 1 && PartialBytes(s.num_tokens, s.num_q_heads, s.head_dim, splits) > workspace_bytes)
    --splits;
  return splits;
}

template <int kHeadDim>
void Launch(const __nv_bfloat16* q, const __nv_bfloat16* k_cache, const __nv_bfloat16* v_cache,
            const int32_t* block_tables, const int32_t* token_seq, const int32_t* context_lens,
            __nv_bfloat16* out, float* workspace, const AttentionShape& s, int splits, cudaStream_t stream) {
  const dim3 grid(s.num_tokens, s.num_kv_heads, splits);
  LaunchWithPdl(PagedAttentionKernel<kHeadDim>, grid, dim3(kThreads), 0, stream, q, k_cache, v_cache,
                block_tables, token_seq, context_lens, out, workspace, s);
  if (splits == 1) return;
  LaunchWithPdl(CombineKernel, dim3(s.num_tokens, s.num_q_heads), dim3(kHeadDim), 0, stream,
                static_cast<const float*>(workspace), context_lens, out, s.num_tokens, s.num_q_heads,
                kHeadDim, splits);
}

}  // namespace

size_t PagedAttentionWorkspaceBytes(int max_tokens, int num_q_heads, int num_kv_heads, int head_dim) {
  const int max_split_rows = std::min(max_tokens, (kTargetBlocks - 1) / std::max(num_kv_heads, 1));
  return PartialBytes(std::max(max_split_rows, 1), num_q_heads, head_dim, kMaxSplits);
}

void PagedAttention(const __nv_bfloat16* q, const __nv_bfloat16* k_cache, const __nv_bfloat16* v_cache,
                    const int32_t* block_tables, const int32_t* token_seq, const int32_t* context_lens,
                    __nv_bfloat16* out, float* workspace, size_t workspace_bytes, const AttentionShape& shape,
                    cudaStream_t stream) {
  if (shape.num_tokens == 0) return;
  const int group = shape.num_kv_heads > 0 ? shape.num_q_heads / shape.num_kv_heads : 0;
  if (group < 1 || group > kMaxGroup || group * shape.num_kv_heads != shape.num_q_heads) {
    CudaFail("PagedAttention", "needs 1..8 query heads per KV head", __FILE__, __LINE__);
  }
  const int splits = PlanSplits(shape, workspace_bytes);
  if (shape.head_dim == 64) {
    Launch<64>(q, k_cache, v_cache, block_tables, token_seq, context_lens, out, workspace, shape, splits,
               stream);
  } else if (shape.head_dim == 128) {
    Launch<128>(q, k_cache, v_cache, block_tables, token_seq, context_lens, out, workspace, shape, splits,
                stream);
  } else {
    CudaFail("PagedAttention", "head_dim must be 64 or 128", __FILE__, __LINE__);
  }
}

}  // namespace doze::kernels

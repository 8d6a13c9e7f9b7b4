#include <algorithm>
#include <cstdlib>

#include "kernels/cuda_check.h"
#include "kernels/device_info.h"
#include "kernels/paged_attention.h"
#include "kernels/pdl.cuh"
#include "kernels/vec.cuh"

namespace doze::kernels {
namespace {

// Each warp runs its own online softmax over 16-key steps with bf16 tensor-core MMAs (m16n8k16): the score
// tile is S[heads, keys] = Q[heads, dims] K^T (the group's query heads are rows 0..7 of the 16-row A
// operand), and the output tile O[heads, dims] += P[heads, keys] V[keys, dims]. Lane (g = lane / 4, c = lane
// % 4) holds query head g. Because a dot product does not depend on the order of its terms, the K operand's
// dimension slots are permuted so that each lane reads 16-byte pieces of a key row (four lanes together 64
// contiguous bytes, LoadQuarterRow), and the V operand's
// column slots so that each lane reads contiguous dimensions of four keys; the accumulators come out in
// contiguous dims too.
constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kStepKeys = 16;  // keys of one PV k-step: two 8-key score tiles
constexpr int kMaxGroup = 8;   // query heads per KV head: the rows 0..7 of the MMA's A operand
constexpr int kMaxSplits = 64;
constexpr int kMinPartition = 128;  // keys per split the plan aims at, at least: one 32-key chunk per warp
constexpr int kPartitionAlign = kStepKeys;
constexpr float kLog2e = 1.4426950408889634f;

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

// Offset of key `key`'s head `kv_head` row in the paged cache.
__device__ __forceinline__ int64_t CacheOffset(const BlockWork& work, const AttentionShape& s, int key) {
  const int64_t block = work.block_table[key / s.block_size];
  return ((block * s.block_size + key % s.block_size) * s.num_kv_heads + work.kv_head) * s.head_dim;
}

__device__ __forceinline__ void PrefetchL1(const void* p) {
  asm volatile("prefetch.global.L1 [%0];" ::"l"(p));
}

template <int N>
__device__ __forceinline__ uint32_t Word(const uint4 (&v)[N], int i) {
  return reinterpret_cast<const uint32_t*>(v)[i];
}

__device__ __forceinline__ uint32_t PackBf16x2(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

// d[rows g, cols 2c..2c+1] += A[16 x 16] B[16 x 8] with A's rows 8..15 zero: a0 holds A[g][2c..2c+1], a2
// A[g][2c+8..2c+9]; b0 holds B[2c..2c+1][g], b1 B[2c+8..2c+9][g].
__device__ __forceinline__ void MmaTopRows(float& d0, float& d1, uint32_t a0, uint32_t a2, uint32_t b0,
                                           uint32_t b1) {
  asm("{\n.reg .f32 discard0, discard1;\n"  // rows 8..15 of D: zero
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,discard0,discard1}, {%2,%3,%4,%5}, "
      "{%6,%7}, {%8,%9,%10,%11};\n}\n"
      : "=f"(d0), "=f"(d1)
      : "r"(a0), "r"(0u), "r"(a2), "r"(0u), "r"(b0), "r"(b1), "f"(d0), "f"(d1), "f"(0.f), "f"(0.f));
}

// The K and V pieces one lane needs for the 16-key step at k0.
template <int kHeadDim>
struct StepLoads {
  uint4 k[2][kHeadDim / 32];  // tile t: key k0 + 8t + g, piece i: dims [32i + 8c, +8) (QuarterRow)
  uint4 v[4][kHeadDim / 64];  // key k0 + 2c + {0, 1, 8, 9}[r], dims [(kHeadDim/8) g, +kHeadDim/8)
};

// Lane c's pieces of a row for the score MMAs: dims [32i + 8c, +8) for piece i, so that each load instruction
// of the four lanes reading one row covers 64 contiguous bytes (whole 32-byte sectors). Q and K use the same
// pieces, and a dot product does not depend on the order of its terms.
template <int N>
__device__ __forceinline__ void LoadQuarterRow(uint4 (&dst)[N], const __nv_bfloat16* row, int c, bool valid) {
#pragma unroll
  for (int i = 0; i < N; ++i)
    dst[i] = valid ? *reinterpret_cast<const uint4*>(row + 32 * i + 8 * c) : make_uint4(0, 0, 0, 0);
}

template <int N>
__device__ __forceinline__ void LoadRow(uint4 (&dst)[N], const __nv_bfloat16* src, bool valid) {
#pragma unroll
  for (int i = 0; i < N; ++i)
    dst[i] = valid ? reinterpret_cast<const uint4*>(src)[i] : make_uint4(0, 0, 0, 0);
}

// Issues every load of one step; keys at or past work.end read as zeros (the cache past a context may hold
// anything, and 0 * NaN would poison the sum).
template <int kHeadDim>
__device__ __forceinline__ void LoadStep(StepLoads<kHeadDim>& d, const __nv_bfloat16* k_cache,
                                         const __nv_bfloat16* v_cache, const BlockWork& work,
                                         const AttentionShape& s, int k0) {
  const int g = (threadIdx.x & 31) >> 2, c = threadIdx.x & 3;
#pragma unroll
  for (int t = 0; t < 2; ++t) {
    const int key = k0 + 8 * t + g;
    const bool valid = key < work.end;
    LoadQuarterRow(d.k[t], k_cache + (valid ? CacheOffset(work, s, key) : 0), c, valid);
  }
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int key = k0 + 2 * c + (r & 1) + 8 * (r >> 1);
    const bool valid = key < work.end;
    LoadRow(d.v[r], v_cache + (valid ? CacheOffset(work, s, key) : 0) + (kHeadDim / 8) * g, valid);
  }
}

// One warp's running softmax for the group's query heads. Lane (g, c) holds head g: the running max m (log2
// units), its own part of the sum l, and O[g][dims (kHeadDim/8)(2c) + j] in o[j][0] and
// O[g][(kHeadDim/8)(2c+1) + j] in o[j][1].
template <int kHeadDim>
struct WarpSoftmax {
  float m = -INFINITY, l = 0.f;
  float o[kHeadDim / 8][2] = {};
};

// Scores, online-softmax update and PV for the step at k0. Words 2s and 2s+1 of q are the A operand of k-step
// s (read in place: copying them out would wait for q's load before the step's K and V loads could issue).
template <int kHeadDim>
__device__ __forceinline__ void ComputeStep(const StepLoads<kHeadDim>& d, const uint4 (&q)[kHeadDim / 32],
                                            WarpSoftmax<kHeadDim>& st, int k0, int end, float scale_log2) {
  const int c = threadIdx.x & 3;
  float x[4];
#pragma unroll
  for (int t = 0; t < 2; ++t) {
    float s0 = 0.f, s1 = 0.f;
#pragma unroll
    for (int s = 0; s < kHeadDim / 16; ++s)
      MmaTopRows(s0, s1, Word(q, 2 * s), Word(q, 2 * s + 1), Word(d.k[t], 2 * s), Word(d.k[t], 2 * s + 1));
    const int key = k0 + 8 * t + 2 * c;
    x[2 * t] = key < end ? s0 * scale_log2 : -INFINITY;
    x[2 * t + 1] = key + 1 < end ? s1 * scale_log2 : -INFINITY;
  }
  float step_max = fmaxf(fmaxf(x[0], x[1]), fmaxf(x[2], x[3]));
  step_max = fmaxf(step_max, __shfl_xor_sync(0xffffffffu, step_max, 1));
  step_max = fmaxf(step_max, __shfl_xor_sync(0xffffffffu, step_max, 2));
  const float new_max = fmaxf(st.m, step_max);
  const float base = new_max == -INFINITY ? 0.f : new_max;  // nothing valid yet: every weight is 0
  const float rescale = exp2f(st.m - base);
  float p[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) p[i] = exp2f(x[i] - base);
  st.l = st.l * rescale + (p[0] + p[1]) + (p[2] + p[3]);
  st.m = new_max;
  const uint32_t pa0 = PackBf16x2(p[0], p[1]), pa2 = PackBf16x2(p[2], p[3]);
#pragma unroll
  for (int w = 0; w < kHeadDim / 16; ++w) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int j = 2 * w + e;
      const uint32_t selector = e == 0 ? 0x5410 : 0x7632;  // low or high halves of two keys' words
      const uint32_t b0 = __byte_perm(Word(d.v[0], w), Word(d.v[1], w), selector);
      const uint32_t b1 = __byte_perm(Word(d.v[2], w), Word(d.v[3], w), selector);
      st.o[j][0] *= rescale;
      st.o[j][1] *= rescale;
      MmaTopRows(st.o[j][0], st.o[j][1], pa0, pa2, b0, b1);
    }
  }
}

// Where dim `d` of a head's row sits in MergeShared::o: one float of padding after every 32 dims, so that the
// lanes (g, c) storing dims 2c(kHeadDim/8) + j of head g hit 32 different banks (rows of 66 or 132 floats).
__device__ __forceinline__ int MergeSlot(int d) { return d + d / 32; }

template <int kHeadDim>
struct MergeShared {
  float o[kWarps][kMaxGroup][kHeadDim + kHeadDim / 32];
  float m[kWarps][kMaxGroup], l[kWarps][kMaxGroup];
};

// Merges the warps' softmaxes and writes the normalised rows: straight to `out` when the block covers the
// whole context, else as a partial (output, max in log2 units, sum) for the combine kernel.
template <int kHeadDim>
__device__ void MergeAndWrite(WarpSoftmax<kHeadDim>& st, MergeShared<kHeadDim>& sh, const BlockWork& work,
                              const AttentionShape& s, __nv_bfloat16* out, float* workspace) {
  const int warp = threadIdx.x >> 5, g = (threadIdx.x & 31) >> 2, c = threadIdx.x & 3;
  st.l += __shfl_xor_sync(0xffffffffu, st.l, 1);
  st.l += __shfl_xor_sync(0xffffffffu, st.l, 2);
#pragma unroll
  for (int j = 0; j < kHeadDim / 8; ++j) {
    sh.o[warp][g][MergeSlot((kHeadDim / 8) * (2 * c) + j)] = st.o[j][0];
    sh.o[warp][g][MergeSlot((kHeadDim / 8) * (2 * c + 1) + j)] = st.o[j][1];
  }
  if (c == 0) {
    sh.m[warp][g] = st.m;
    sh.l[warp][g] = st.l;
  }
  __syncthreads();
  const int splits = gridDim.z;
  for (int e = threadIdx.x; e < work.group * kHeadDim; e += blockDim.x) {
    const int h = e / kHeadDim, dim = e % kHeadDim;
    float block_max = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) block_max = fmaxf(block_max, sh.m[w][h]);
    float sum = 0.f, value = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float weight = exp2f(sh.m[w][h] - block_max);  // 0 for a warp that saw no key
      sum += sh.l[w][h] * weight;
      value += sh.o[w][h][MergeSlot(dim)] * weight;
    }
    const int64_t row = static_cast<int64_t>(work.token) * s.num_q_heads + work.kv_head * work.group + h;
    if (splits == 1) {
      out[row * kHeadDim + dim] = __float2bfloat16(value / sum);
      continue;
    }
    const int64_t part = row * splits + blockIdx.z;
    workspace[part * kHeadDim + dim] = value / sum;
    if (dim == 0) {
      float* max_sum = workspace + static_cast<int64_t>(s.num_tokens) * s.num_q_heads * splits * kHeadDim;
      max_sum[part * 2] = block_max;
      max_sum[part * 2 + 1] = sum;
    }
  }
}

// Steps a warp keeps in flight: two 16-key steps at head_dim 64, one at 128 (registers).
template <int kHeadDim>
constexpr int kStepsPerChunk = kHeadDim == 64 ? 2 : 1;

// Grid (num_tokens, num_kv_heads, splits); the block serves all query heads of its KV head over one key
// range, its warps taking chunks of kStepsPerChunk steps in turn.
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
  constexpr int kSteps = kStepsPerChunk<kHeadDim>;
  constexpr int kChunkKeys = kSteps * kStepKeys;
  __shared__ MergeShared<kHeadDim> merge;
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
  const int warp = threadIdx.x >> 5, g = (threadIdx.x & 31) >> 2, c = threadIdx.x & 3;
  // The block-table entries of this warp's first chunk into L1 while the previous kernel finishes, so that
  // its K and V loads wait for one round trip after the wait instead of two.
  const int first_key = work.begin + warp * kChunkKeys;
  if (first_key < work.end) {
    PrefetchL1(work.block_table + first_key / s.block_size);
    PrefetchL1(work.block_table + (min(first_key + kChunkKeys, work.end) - 1) / s.block_size);
  }
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
  // Head g's query, lane c's pieces (LoadQuarterRow): the A operand of the score MMAs.
  uint4 q_raw[kHeadDim / 32];
  LoadQuarterRow(
      q_raw,
      q + static_cast<int64_t>(work.token) * s.q_row_stride + (work.kv_head * work.group + g) * kHeadDim, c,
      g < work.group);
  const float scale_log2 = s.scale * kLog2e;
  WarpSoftmax<kHeadDim> st;
  for (int k0 = work.begin + warp * kChunkKeys; k0 < work.end; k0 += kWarps * kChunkKeys) {
    StepLoads<kHeadDim> loads[kSteps];
#pragma unroll
    for (int i = 0; i < kSteps; ++i) {
      if (i == 0 || k0 + i * kStepKeys < work.end)
        LoadStep(loads[i], k_cache, v_cache, work, s, k0 + i * kStepKeys);
    }
    const int next_key = k0 + kWarps * kChunkKeys;  // this warp's next chunk: its table entry meanwhile
    if (next_key < work.end) PrefetchL1(work.block_table + next_key / s.block_size);
#pragma unroll
    for (int i = 0; i < kSteps; ++i) {
      if (i == 0 || k0 + i * kStepKeys < work.end)
        ComputeStep(loads[i], q_raw, st, k0 + i * kStepKeys, work.end, scale_log2);
    }
  }
  MergeAndWrite(st, merge, work, s, out, workspace);
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
    const float weight = max_sum[part * 2 + 1] * exp2f(max_sum[part * 2] - global_max);
    total += weight;
    value += weight * workspace[part * head_dim + threadIdx.x];
  }
  out[row * head_dim + threadIdx.x] = __float2bfloat16(valid > 0 ? value / total : 0.f);
}

size_t PartialBytes(int num_tokens, int num_q_heads, int head_dim, int splits) {
  return static_cast<size_t>(num_tokens) * num_q_heads * splits * (head_dim + 2) * sizeof(float);
}

// Blocks of the split kernel that fit the device at once (its occupancy times the multiprocessors).
template <int kHeadDim>
int WaveBlocks() {
  static const int blocks = [] {
    int per_sm = 0;
    CUDA_CHECK(
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, PagedAttentionKernel<kHeadDim>, kThreads, 0));
    return std::max(1, MultiprocessorCount() * per_sm);
  }();
  return blocks;
}

int WaveBlocksFor(int head_dim) { return head_dim == 128 ? WaveBlocks<128>() : WaveBlocks<64>(); }

// Splits the key range only as far as the grid still fits in one wave (rounding down: a second, mostly idle
// wave costs a whole block's time), at most one split per kMinPartition keys of the context bucket, and only
// as far as the workspace allows.
int PlanSplits(const AttentionShape& s, size_t workspace_bytes) {
  static const int most = [] {  // DOZE_ATTENTION_MAX_SPLITS lowers the cap (for measurements)
    const char* env = std::getenv("DOZE_ATTENTION_MAX_SPLITS");
    return env != nullptr && std::atoi(env) > 0 ? std::min(kMaxSplits, std::atoi(env)) : kMaxSplits;
  }();
  const int max_context = std::max(s.max_context, 1);
  const int rows = s.num_tokens * s.num_kv_heads;
  int splits = std::max(1, std::min({most, (max_context + kMinPartition - 1) / kMinPartition,
                                     WaveBlocksFor(s.head_dim) / rows}));
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
  const int max_split_rows = std::min(max_tokens, (WaveBlocksFor(head_dim) - 1) / std::max(num_kv_heads, 1));
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

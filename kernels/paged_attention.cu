#include <algorithm>

#include "kernels/async_copy.cuh"
#include "kernels/attention_merge.cuh"
#include "kernels/attention_rotary.cuh"
#include "kernels/cuda_check.h"
#include "kernels/device_info.h"
#include "kernels/env_knob.h"
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
constexpr int kStepKeys = 16;  // keys of one PV k-step: two 8-key score tiles
static_assert(kAttentionBlockSizeMultiple % kStepKeys == 0, "a step's keys must share a cache block");
constexpr int kMaxGroup = 8;  // query heads per KV head: the rows 0..7 of the MMA's A operand
constexpr int kMaxSplits = kAttentionMaxSplits;
constexpr int kMinPartition = 128;  // keys per split the plan aims at, at least: one 32-key chunk per warp
// Decode batches of at most kFineSplitRows rows split finer, down to kFinePartition keys per split, up to
// kFineSplits splits: their grids leave most of the GPU idle, and a short chain of chunks per warp beats
// fewer combine inputs (H100: 1 x 640 in a 1,024 bucket 6.66 -> 5.59 us, 8 x 640 7.76 -> 6.62; 32 keys a
// split and 32 splits at 2,048 were slower; kernels/PERF_NOTES.md).
constexpr int kFineSplitRows = 8, kFinePartition = 64, kFineSplits = 16;
constexpr int kPartitionAlign = kAttentionPartitionAlign;
static_assert(kPartitionAlign == kStepKeys, "splits cut the keys at steps");
// Decode batches from kWholeMinRows rows take whole blocks (WholeBlock, UseWhole) in context buckets up to
// kWholeShortContext keys, and at any context once their blocks fill the GPU.
constexpr int kWholeMinRows = kFineSplitRows + 1, kWholeShortContext = 1024;
constexpr float kLog2e = 1.4426950408889634f;

// A kernel variant's block: its warps, and the staged chunk buffers of each warp (kernels/PERF_NOTES.md has
// the measurements behind both).
template <int kWarpCount, int kBufferCount>
struct BlockShape {
  static constexpr int kWarps = kWarpCount;
  static constexpr int kThreads = 32 * kWarpCount;
  static constexpr int kBuffers = kBufferCount;
};
// Split blocks: a wave of many small blocks, each over one key range, merged by the combine kernel (three
// buffers measured no better at batch 64, within 0.4 us).
using SplitBlock = BlockShape<4, 2>;
// Whole blocks: one block of 16 warps takes a row's whole context for its KV head, its first 768 keys (16
// warps x 3 chunks of 16) all on their way before the grid dependency wait, and no combine kernel follows. A
// block fills a multiprocessor (192 KB of chunk buffers), so it waits for a whole free one: at up to 8 rows
// the split kernel's small blocks, which start beside the kernel before, win in the step (H100,
// kernels/PERF_NOTES.md).
using WholeBlock = BlockShape<16, 3>;
// The fewest keys a split takes when the context allows, for batches of up to kFineSplitRows rows: one
// 16-key chunk for each of the block's warps; larger batches take kMinPartition. A row shorter than its
// bucket's splits times this uses fewer splits (the rest exit at once) rather than leaving warps idle in
// every block (H100: 1 x 640 in a 1,024 bucket, 14 splits of 48 keys, took longer than 1 x 1,000 in 16 of 64;
// at 16 rows 128 keys beat 64 and 96, at 1 to 8 rows 64 beat 96 and 128: kernels/PERF_NOTES.md).
// DOZE_ATTENTION_MIN_PARTITION overrides it (measurements).
constexpr int kMinRowPartition = SplitBlock::kWarps * kStepKeys;

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

// The keys of a 16-key step (k0 a multiple of kStepKeys) lie in one cache block, since CheckShape takes
// block sizes that are multiples of kAttentionBlockSizeMultiple: key k0 + o's row is at CacheOffset(k0) +
// o * KeyStride. One table lookup and one division a step instead of one per key (the per-key address
// arithmetic was most of the decode kernel's instructions: kernels/PERF_NOTES.md).
__device__ __forceinline__ int KeyStride(const AttentionShape& s) { return s.num_kv_heads * s.head_dim; }

__device__ __forceinline__ void PrefetchL1(const void* p) {
  asm volatile("prefetch.global.L1 [%0];" ::"l"(p));
}

template <int N>
__device__ __forceinline__ uint32_t Word(const uint4 (&v)[N], int i) {
  return reinterpret_cast<const uint32_t*>(v)[i];
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

// One step's pieces in shared memory, [piece][lane]: lane l's 16-byte pieces at column l, so that a warp's
// read of one piece covers 512 contiguous bytes (no bank conflict). Pieces 0 .. kHeadDim/16 - 1 are K's
// (tile t, piece i at t * kHeadDim/32 + i), the rest V's (key r, piece i at kHeadDim/16 + r * kHeadDim/64 +
// i).
template <int kHeadDim>
using StepSlot = uint4[kHeadDim / 8][32];

// Issues the copies of one step into `slot`, each lane the pieces it will read back itself (so no barrier is
// needed between the copy and the read): keys before `copy_end` with their data, keys at or past work.end as
// zeros (the cache past a context may hold anything, and 0 * NaN would poison the sum), keys in between not
// at all (IssueKey copies them later).
template <int kHeadDim>
__device__ __forceinline__ void IssueStep(StepSlot<kHeadDim>& slot, const __nv_bfloat16* k_cache,
                                          const __nv_bfloat16* v_cache, const BlockWork& work,
                                          const AttentionShape& s, int k0, int copy_end) {
  if (k0 >= work.end) return;  // a chunk past the warp's range
  const int lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
  const int64_t step = CacheOffset(work, s, k0);
  const int stride = KeyStride(s);
  // Piece `piece` of key k0 + o, `offset` elements into the key's row.
  auto copy = [&](int piece, int o, const __nv_bfloat16* cache, int offset) {
    if (k0 + o < copy_end) {
      CopyAsync16(&slot[piece][lane], cache + step + o * stride + offset, true);
    } else if (k0 + o >= work.end) {
      CopyAsync16(&slot[piece][lane], cache, false);
    }
  };
  int piece = 0;
#pragma unroll
  for (int t = 0; t < 2; ++t) {
#pragma unroll
    for (int i = 0; i < kHeadDim / 32; ++i) copy(piece++, 8 * t + g, k_cache, 32 * i + 8 * c);
  }
#pragma unroll
  for (int r = 0; r < 4; ++r) {
#pragma unroll
    for (int i = 0; i < kHeadDim / 64; ++i)
      copy(piece++, 2 * c + (r & 1) + 8 * (r >> 1), v_cache, (kHeadDim / 8) * g + 8 * i);
  }
}

// Issues the copies of the one key `key` of the step at k0 (the lanes that hold its pieces).
template <int kHeadDim>
__device__ __forceinline__ void IssueKey(StepSlot<kHeadDim>& slot, const __nv_bfloat16* k_cache,
                                         const __nv_bfloat16* v_cache, const BlockWork& work,
                                         const AttentionShape& s, int k0, int key) {
  const int lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3, o = key - k0;
  const int64_t row = CacheOffset(work, s, key);
  if (g == o % 8) {  // K: tile o / 8, row g
#pragma unroll
    for (int i = 0; i < kHeadDim / 32; ++i)
      CopyAsync16(&slot[(o / 8) * (kHeadDim / 32) + i][lane], k_cache + row + 32 * i + 8 * c, true);
  }
  if (c == (o % 8) / 2) {  // V: key 2c + (r & 1) + 8 (r >> 1)
    const int r = (o & 1) + 2 * (o / 8);
#pragma unroll
    for (int i = 0; i < kHeadDim / 64; ++i) {
      CopyAsync16(&slot[kHeadDim / 16 + r * (kHeadDim / 64) + i][lane],
                  v_cache + row + (kHeadDim / 8) * g + 8 * i, true);
    }
  }
}

// The lane's pieces of a landed step, in the fragment layout ComputeStep takes.
template <int kHeadDim>
__device__ __forceinline__ void ReadStep(StepLoads<kHeadDim>& d, const StepSlot<kHeadDim>& slot) {
  const int lane = threadIdx.x & 31;
  int piece = 0;
#pragma unroll
  for (int t = 0; t < 2; ++t) {
#pragma unroll
    for (int i = 0; i < kHeadDim / 32; ++i) d.k[t][i] = slot[piece++][lane];
  }
#pragma unroll
  for (int r = 0; r < 4; ++r) {
#pragma unroll
    for (int i = 0; i < kHeadDim / 64; ++i) d.v[r][i] = slot[piece++][lane];
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

template <int kHeadDim, typename B>
struct MergeShared {
  float o[B::kWarps][kMaxGroup][kHeadDim + kHeadDim / 32];
  float m[B::kWarps][kMaxGroup], l[B::kWarps][kMaxGroup];
  float weight[B::kWarps][kMaxGroup];          // exp2(m - the head's block max)
  float block_max[kMaxGroup], sum[kMaxGroup];  // per head: the warps' max, and their l weighted
};

// Merges the warps' softmaxes and writes the normalised rows: straight to `out` when the block covers the
// whole context, else as a partial (output, max in log2 units, sum) for the combine kernel.
template <int kHeadDim, typename B>
__device__ void MergeAndWrite(WarpSoftmax<kHeadDim>& st, MergeShared<kHeadDim, B>& sh, const BlockWork& work,
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
  // Each head's block max, warp weights and weighted sum once, rather than by each of its kHeadDim elements
  // (the same operations in the same order, so the same values).
  if (threadIdx.x < work.group) {
    const int h = threadIdx.x;
    float block_max = -INFINITY;
#pragma unroll
    for (int w = 0; w < B::kWarps; ++w) block_max = fmaxf(block_max, sh.m[w][h]);
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < B::kWarps; ++w) {
      const float weight = exp2f(sh.m[w][h] - block_max);  // 0 for a warp that saw no key
      sh.weight[w][h] = weight;
      sum += sh.l[w][h] * weight;
    }
    sh.block_max[h] = block_max;
    sh.sum[h] = sum;
  }
  __syncthreads();
  const int splits = gridDim.z;
  for (int e = threadIdx.x; e < work.group * kHeadDim; e += blockDim.x) {
    const int h = e / kHeadDim, dim = e % kHeadDim;
    const float block_max = sh.block_max[h], sum = sh.sum[h];
    float value = 0.f;
#pragma unroll
    for (int w = 0; w < B::kWarps; ++w) value += sh.o[w][h][MergeSlot(dim)] * sh.weight[w][h];
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

// Steps of one chunk, the unit a warp takes in turn: in registers two 16-key steps at head_dim 64, one at 128
// (4 or 8 KB of K and V a warp); staged in shared memory one step (two measured slower at batch 64).
template <int kHeadDim>
constexpr int kStepsPerChunk = kHeadDim == 64 ? 2 : 1;
constexpr int kStagedChunkKeys = kStepKeys;

// The block's shared memory: each warp's chunk buffers (the one it computes, the rest in flight) while the
// keys are read, then the merge.
template <int kHeadDim, typename B>
union AttentionShared {
  StepSlot<kHeadDim> chunks[B::kWarps][B::kBuffers];
  MergeShared<kHeadDim, B> merge;
};

// The block-table entries of the chunk at k0 into L1, so that its copies wait for one round trip, not two.
__device__ __forceinline__ void PrefetchChunkTable(const BlockWork& work, const AttentionShape& s, int k0,
                                                   int chunk_keys) {
  if (k0 >= work.end) return;
  PrefetchL1(work.block_table + k0 / s.block_size);
  PrefetchL1(work.block_table + (min(k0 + chunk_keys, work.end) - 1) / s.block_size);
}

// Issues every load of one step (k0 < work.end) into registers; keys at or past work.end read as zeros.
template <int kHeadDim>
__device__ __forceinline__ void LoadStep(StepLoads<kHeadDim>& d, const __nv_bfloat16* k_cache,
                                         const __nv_bfloat16* v_cache, const BlockWork& work,
                                         const AttentionShape& s, int k0) {
  const int g = (threadIdx.x & 31) >> 2, c = threadIdx.x & 3;
  const int64_t step = CacheOffset(work, s, k0);
  const int stride = KeyStride(s);
#pragma unroll
  for (int t = 0; t < 2; ++t) {
    const int o = 8 * t + g;
    const bool valid = k0 + o < work.end;
    LoadQuarterRow(d.k[t], k_cache + (valid ? step + o * stride : 0), c, valid);
  }
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int o = 2 * c + (r & 1) + 8 * (r >> 1);
    const bool valid = k0 + o < work.end;
    const __nv_bfloat16* row = v_cache + (valid ? step + o * stride : 0) + (kHeadDim / 8) * g;
#pragma unroll
    for (int i = 0; i < kHeadDim / 64; ++i)
      d.v[r][i] = valid ? reinterpret_cast<const uint4*>(row)[i] : make_uint4(0, 0, 0, 0);
  }
}

// What a warp needs to run its chunks: the block's work, the caches, its query and where chunks start.
template <int kHeadDim>
struct WarpKeys {
  const __nv_bfloat16* k_cache;
  const __nv_bfloat16* v_cache;
  const BlockWork& work;
  const AttentionShape& s;
  int first_key;
  float scale_log2;
  int newest;  // the row's newest key: its context - 1
  // With rotary.positions: the newest key's K and V come from the row's unrotated QKV (qkv_row), rotated by
  // `rotation`, instead of from the cache (PlaceNewestKey).
  AttentionRotary rotary;
  const __nv_bfloat16* qkv_row;
  LaneRotation<kHeadDim> rotation;
};

// Places the newest key of the step at k0, its K rotated, into `slot` from the row's QKV (the lanes that hold
// its pieces, as IssueKey) and writes its K and V into the cache at the row's slot.
template <int kHeadDim>
__device__ __forceinline__ void PlaceNewestKey(const WarpKeys<kHeadDim>& w, StepSlot<kHeadDim>& slot,
                                               int k0) {
  const int lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3, o = w.newest - k0;
  const AttentionShape& s = w.s;
  const int64_t cache_slot = w.rotary.slot_mapping[w.work.token];
  const int64_t cache_row = (cache_slot * s.num_kv_heads + w.work.kv_head) * kHeadDim;
  if (g == o % 8) {  // K: tile o / 8, row g
    uint4 k[kHeadDim / 32];
    LoadQuarterRow(k, w.qkv_row + (s.num_q_heads + w.work.kv_head) * kHeadDim, c, true);
    RotateQuarterRow<kHeadDim>(k, w.rotation);
#pragma unroll
    for (int i = 0; i < kHeadDim / 32; ++i) {
      slot[(o / 8) * (kHeadDim / 32) + i][lane] = k[i];
      if (cache_slot >= 0) *reinterpret_cast<uint4*>(w.rotary.k_cache + cache_row + 32 * i + 8 * c) = k[i];
    }
  }
  if (c == (o % 8) / 2) {  // V: key 2c + (r & 1) + 8 (r >> 1)
    const int r = (o & 1) + 2 * (o / 8);
    const __nv_bfloat16* v_new = w.qkv_row + (s.num_q_heads + s.num_kv_heads + w.work.kv_head) * kHeadDim;
#pragma unroll
    for (int i = 0; i < kHeadDim / 64; ++i) {
      const uint4 v = *reinterpret_cast<const uint4*>(v_new + (kHeadDim / 8) * g + 8 * i);
      slot[kHeadDim / 16 + r * (kHeadDim / 64) + i][lane] = v;
      if (cache_slot >= 0)
        *reinterpret_cast<uint4*>(w.rotary.v_cache + cache_row + (kHeadDim / 8) * g + 8 * i) = v;
    }
  }
}

// The key loop with loads in registers: a warp issues its chunk's loads, then computes them (prefill rows,
// where rows of one sequence share keys through L1).
template <int kHeadDim, typename B>
__device__ __forceinline__ void RunChunksInRegisters(const WarpKeys<kHeadDim>& w,
                                                     const uint4 (&q_raw)[kHeadDim / 32],
                                                     WarpSoftmax<kHeadDim>& st) {
  constexpr int kSteps = kStepsPerChunk<kHeadDim>, kChunkKeys = kSteps * kStepKeys;
  for (int k0 = w.first_key; k0 < w.work.end; k0 += B::kWarps * kChunkKeys) {
    StepLoads<kHeadDim> loads[kSteps];
#pragma unroll
    for (int i = 0; i < kSteps; ++i) {
      if (i == 0 || k0 + i * kStepKeys < w.work.end)
        LoadStep(loads[i], w.k_cache, w.v_cache, w.work, w.s, k0 + i * kStepKeys);
    }
    const int next_key = k0 + B::kWarps * kChunkKeys;  // this warp's next chunk: its table entry meanwhile
    if (next_key < w.work.end) PrefetchL1(w.work.block_table + next_key / w.s.block_size);
#pragma unroll
    for (int i = 0; i < kSteps; ++i) {
      if (i == 0 || k0 + i * kStepKeys < w.work.end)
        ComputeStep(loads[i], q_raw, st, k0 + i * kStepKeys, w.work.end, w.scale_log2);
    }
  }
}

// The key loop with chunks staged in shared memory (decode rows): the first B::kBuffers chunks are on their
// way (IssueEarlyChunks, IssueNewestKey); each later one is copied into the buffer just computed, so a warp
// has B::kBuffers - 1 chunks in flight while it computes one.
template <int kHeadDim, typename B, bool kRotary>
__device__ __forceinline__ void RunStagedChunks(const WarpKeys<kHeadDim>& w,
                                                const uint4 (&q_raw)[kHeadDim / 32],
                                                WarpSoftmax<kHeadDim>& st,
                                                StepSlot<kHeadDim> (&chunks)[B::kBuffers]) {
  constexpr int kStride = B::kWarps * kStagedChunkKeys;
  int buffer = 0;
  for (int k0 = w.first_key; k0 < w.work.end; k0 += kStride, buffer = (buffer + 1) % B::kBuffers) {
    const int next = k0 + (B::kBuffers - 1) * kStride;  // the chunk to copy now, into the last one's buffer
    if (k0 == w.first_key) {
      PrefetchChunkTable(w.work, w.s, w.first_key + B::kBuffers * kStride, kStagedChunkKeys);
      WaitAsyncCopies<0>();
    } else if (next < w.work.end) {
      StepSlot<kHeadDim>& slot = chunks[(buffer + B::kBuffers - 1) % B::kBuffers];
      // With the rotary: the newest key, if in this chunk, is placed from the row's QKV rather than copied.
      const bool place_newest =
          kRotary && w.newest >= next && w.newest < next + kStagedChunkKeys && w.newest < w.work.end;
      IssueStep<kHeadDim>(slot, w.k_cache, w.v_cache, w.work, w.s, next,
                          place_newest ? w.newest : w.work.end);
      if (place_newest) PlaceNewestKey(w, slot, next);
      PrefetchChunkTable(w.work, w.s, next + kStride, kStagedChunkKeys);
      CommitAsyncCopies();
      WaitAsyncCopies<B::kBuffers - 1>();
    } else {
      WaitAsyncCopies<0>();
    }
    StepLoads<kHeadDim> loads;
    ReadStep(loads, chunks[buffer]);
    ComputeStep(loads, q_raw, st, k0, w.work.end, w.scale_log2);
  }
}

// Copies, into the warp's chunk buffers, the keys of its first B::kBuffers chunks but each row's newest:
// with one new token per sequence they were all written by earlier steps, so this runs before the grid
// dependency wait.
template <int kHeadDim, typename B>
__device__ __forceinline__ void IssueEarlyChunks(const WarpKeys<kHeadDim>& w,
                                                 StepSlot<kHeadDim> (&chunks)[B::kBuffers]) {
  const int copy_end = min(w.newest, w.work.end);
#pragma unroll
  for (int i = 0; i < B::kBuffers; ++i) {
    IssueStep<kHeadDim>(chunks[i], w.k_cache, w.v_cache, w.work, w.s,
                        w.first_key + i * B::kWarps * kStagedChunkKeys, copy_end);
  }
  CommitAsyncCopies();
}

// After the wait: the newest key, if it lies in one of this warp's first B::kBuffers chunks (a later chunk
// copies it in RunStagedChunks).
template <int kHeadDim, typename B, bool kRotary>
__device__ __forceinline__ void IssueNewestKey(const WarpKeys<kHeadDim>& w,
                                               StepSlot<kHeadDim> (&chunks)[B::kBuffers]) {
  const int warp = threadIdx.x >> 5, newest = w.newest;
  if (newest >= w.work.begin && newest < w.work.end) {
    const int chunk =
        (newest - w.work.begin) / kStagedChunkKeys;  // the block's; warp chunk % B::kWarps takes it
    if (chunk % B::kWarps == warp && chunk / B::kWarps < B::kBuffers) {
      const int k0 = w.work.begin + chunk * kStagedChunkKeys;
      if constexpr (kRotary) {
        PlaceNewestKey(w, chunks[chunk / B::kWarps], k0);
      } else {
        IssueKey<kHeadDim>(chunks[chunk / B::kWarps], w.k_cache, w.v_cache, w.work, w.s, k0, newest);
      }
    }
  }
  CommitAsyncCopies();
}

// Grid (num_tokens, num_kv_heads, splits); the block serves all query heads of its KV head over one key
// range, its warps taking chunks in turn. kStaged (decode rows, shape.one_token_per_seq): a warp's chunks go
// through shared memory (cp.async), the next copied while the current one is computed, and the copies of the
// keys no kernel of this step writes start before the grid dependency wait. kRotary (staged only): q's rows
// are the QKV projection's, unrotated; the kernel rotates Q and the newest K (the cos and sin before the
// wait) and writes the newest K and V into the cache. The next kernel may launch once the block's chunks are
// done, not at the wait, so that its early loads do not share the memory with the keys' (on the H100 doze
// bench batch 1 and 2 -0.5%, the others unchanged; kernels/PERF_NOTES.md, fifteenth session).
template <int kHeadDim, bool kStaged, typename B, bool kRotary = false>
static __global__ void __launch_bounds__(B::kThreads) PagedAttentionKernel(
    const __nv_bfloat16* __restrict__ q,        // [num_tokens, q_row_stride]
    const __nv_bfloat16* __restrict__ k_cache,  // [num_blocks, block_size, kv_heads, head_dim]
    const __nv_bfloat16* __restrict__ v_cache,  // [num_blocks, block_size, kv_heads, head_dim]
    const int32_t* __restrict__ block_tables,   // [num_seqs, max_blocks_per_seq]
    const int32_t* __restrict__ token_seq,      // [num_tokens]
    const int32_t* __restrict__ context_lens,   // [num_tokens]
    __nv_bfloat16* __restrict__ out,            // [num_tokens, num_q_heads, head_dim]
    float* __restrict__ workspace,              // partials when gridDim.z > 1
    AttentionShape s, int min_partition, AttentionRotary rotary) {
  static_assert(kStaged || !kRotary, "the rotary runs in the staged kernel only");
  constexpr int kChunkKeys = kStaged ? kStagedChunkKeys : kStepsPerChunk<kHeadDim> * kStepKeys;
  extern __shared__ uint4 shared_raw[];  // AttentionShared when kStaged, else MergeShared
  auto* staged = reinterpret_cast<AttentionShared<kHeadDim, B>*>(shared_raw);
  BlockWork work{static_cast<int>(blockIdx.x),
                 static_cast<int>(blockIdx.y),
                 s.num_q_heads / s.num_kv_heads,
                 0,
                 0,
                 nullptr};
  // The step's metadata comes from the host before the first kernel: it may be read before the wait.
  const int context = context_lens[work.token];
  const int partition = RowPartition(context, gridDim.z, min_partition);
  work.begin = blockIdx.z * partition;
  work.end = min(context, work.begin + partition);
  work.block_table = block_tables + static_cast<int64_t>(token_seq[work.token]) * s.max_blocks_per_seq;
  const int warp = threadIdx.x >> 5, g = (threadIdx.x & 31) >> 2, c = threadIdx.x & 3;
  const __nv_bfloat16* qkv_row = q + static_cast<int64_t>(work.token) * s.q_row_stride;
  LaneRotation<kHeadDim> rotation{};
  if constexpr (kRotary) {
    __shared__ float table[2][kHeadDim / 2];
    rotation = ComputeLaneRotation<kHeadDim>(c, static_cast<float>(rotary.positions[work.token]),
                                             rotary.inv_freq, table);
  }
  const WarpKeys<kHeadDim> keys{
      k_cache,          v_cache,     work,   s,       work.begin + warp * kChunkKeys,
      s.scale * kLog2e, context - 1, rotary, qkv_row, rotation};
  // The block-table entries of this warp's first chunks into L1 while the previous kernel finishes.
  PrefetchChunkTable(work, s, keys.first_key, kChunkKeys);
  if constexpr (kStaged) {
    PrefetchChunkTable(work, s, keys.first_key + B::kWarps * kChunkKeys, kChunkKeys);
    IssueEarlyChunks<kHeadDim, B>(keys, staged->chunks[warp]);
  }
  GridDependencyWait();
  if (work.begin >= work.end) {
    if (gridDim.z == 1) {
      for (int e = threadIdx.x; e < work.group * kHeadDim; e += blockDim.x) {
        out[(static_cast<int64_t>(work.token) * s.num_q_heads + work.kv_head * work.group) * kHeadDim + e] =
            __float2bfloat16(0.f);
      }
    }
    return;
  }
  if constexpr (kStaged) IssueNewestKey<kHeadDim, B, kRotary>(keys, staged->chunks[warp]);
  // Head g's query, lane c's pieces (LoadQuarterRow): the A operand of the score MMAs.
  uint4 q_raw[kHeadDim / 32];
  LoadQuarterRow(q_raw, qkv_row + (work.kv_head * work.group + g) * kHeadDim, c, g < work.group);
  if constexpr (kRotary) RotateQuarterRow<kHeadDim>(q_raw, rotation);
  WarpSoftmax<kHeadDim> st;
  if constexpr (kStaged) {
    RunStagedChunks<kHeadDim, B, kRotary>(keys, q_raw, st, staged->chunks[warp]);
    LaunchDependents();
    __syncthreads();  // every warp is done with its chunk buffers: the merge reuses the space
    MergeAndWrite<kHeadDim, B>(st, staged->merge, work, s, out, workspace);
  } else {
    RunChunksInRegisters<kHeadDim, B>(keys, q_raw, st);
    LaunchDependents();
    MergeAndWrite<kHeadDim, B>(st, *reinterpret_cast<MergeShared<kHeadDim, B>*>(shared_raw), work, s, out,
                               workspace);
  }
}

// Grid (num_tokens, num_q_heads), one thread per dimension: merges the partial softmaxes of the valid splits
// (MergeSplits).
template <int kHeadDim>
static __global__ void CombineKernel(
    AttentionPartials p,
    __nv_bfloat16* __restrict__ out) {  // [num_tokens, num_q_heads, head_dim]
  const int64_t row = static_cast<int64_t>(blockIdx.x) * p.num_q_heads + blockIdx.y;
  const int context = p.context_lens[blockIdx.x];  // host metadata: read before the wait
  GridDependencyWait();
  LaunchDependents();
  const int valid = ValidSplits(context, p.splits, p.min_partition);
  out[row * kHeadDim + threadIdx.x] = __float2bfloat16(MergeSplits<kHeadDim>(p, row, threadIdx.x, valid));
}

size_t PartialBytes(int num_tokens, int num_q_heads, int head_dim, int splits) {
  return static_cast<size_t>(num_tokens) * num_q_heads * splits * (head_dim + 2) * sizeof(float);
}

// Decode launches stage their keys in shared memory (kStaged); prefill keeps them in registers: its rows of
// one sequence share keys through L1, which the staged kernel's shared memory shrinks. (Decode at 17 to 32
// rows took the register kernel until the tensor-core projections took those rows: kernels/PERF_NOTES.md.)
bool UseStaged(const AttentionShape& s) { return s.one_token_per_seq; }

// The kernel's dynamic shared memory, opted in above the default 48 KB once per variant.
template <int kHeadDim, bool kStaged, typename B, bool kRotary = false>
size_t KernelSharedBytes() {
  static const size_t bytes = [] {
    const size_t size = kStaged ? sizeof(AttentionShared<kHeadDim, B>) : sizeof(MergeShared<kHeadDim, B>);
    CUDA_CHECK(cudaFuncSetAttribute(PagedAttentionKernel<kHeadDim, kStaged, B, kRotary>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(size)));
    return size;
  }();
  return bytes;
}

// Blocks of the split kernel that fit the device at once (its occupancy times the multiprocessors).
template <int kHeadDim, bool kStaged>
int WaveBlocks() {
  static const int blocks = [] {
    int per_sm = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        &per_sm, PagedAttentionKernel<kHeadDim, kStaged, SplitBlock>, SplitBlock::kThreads,
        KernelSharedBytes<kHeadDim, kStaged, SplitBlock>()));
    return std::max(1, MultiprocessorCount() * per_sm);
  }();
  return blocks;
}

int WaveBlocksFor(int head_dim, bool staged) {
  if (head_dim == 128) return staged ? WaveBlocks<128, true>() : WaveBlocks<128, false>();
  return staged ? WaveBlocks<64, true>() : WaveBlocks<64, false>();
}

// Whole blocks serve decode rows at head_dim 64 (three chunks of 128 at 16 warps would not fit a
// multiprocessor's shared memory) from kWholeMinRows rows while they fit one wave, in context buckets up to
// kWholeShortContext or, beyond, once they fill the GPU: on the H100 the split kernel stays faster at 24 to
// 32 rows of 1,500 to 2,048 keys and at up to 8 rows (kernels/PERF_NOTES.md). DOZE_ATTENTION_WHOLE=0 turns
// them off, DOZE_ATTENTION_WHOLE_MIN_ROWS moves kWholeMinRows (measurements).
bool UseWhole(const AttentionShape& s) {
  static const bool enabled = EnvFlag("DOZE_ATTENTION_WHOLE");
  static const int min_rows = EnvInt("DOZE_ATTENTION_WHOLE_MIN_ROWS", kWholeMinRows);
  if (!enabled || !UseStaged(s) || s.head_dim != 64 || s.num_tokens < min_rows) return false;
  const int blocks = s.num_tokens * s.num_kv_heads, sms = MultiprocessorCount();
  return blocks <= sms && (s.max_context <= kWholeShortContext || 8 * blocks >= 7 * sms);
}

// Splits the key range only as far as the grid still fits in one wave (rounding down: a second, mostly idle
// wave costs a whole block's time), at most one split per kMinPartition keys of the context bucket (finer for
// small batches: kFineSplitRows), and only as far as the workspace allows.
int PlanSplits(const AttentionShape& s, size_t workspace_bytes) {
  // DOZE_ATTENTION_MAX_SPLITS lowers the cap (for measurements).
  static const int most = std::min(kMaxSplits, EnvInt("DOZE_ATTENTION_MAX_SPLITS", kMaxSplits));
  const int max_context = std::max(s.max_context, 1);
  const int rows = s.num_tokens * s.num_kv_heads;
  int by_context = (max_context + kMinPartition - 1) / kMinPartition;
  if (s.num_tokens <= kFineSplitRows)
    by_context =
        std::max(by_context, std::min(kFineSplits, (max_context + kFinePartition - 1) / kFinePartition));
  int splits = std::max(1, std::min({most, by_context, WaveBlocksFor(s.head_dim, UseStaged(s)) / rows}));
  while (splits > 1 && PartialBytes(s.num_tokens, s.num_q_heads, s.head_dim, splits) > workspace_bytes)
    --splits;
  return splits;
}
int MinRowPartition(int rows) {
  static const int keys =
      (EnvInt("DOZE_ATTENTION_MIN_PARTITION", 0) + kPartitionAlign - 1) / kPartitionAlign * kPartitionAlign;
  if (keys > 0) return keys;
  return rows <= kFineSplitRows ? kMinRowPartition : kMinPartition;
}

// The arguments of one PagedAttention launch.
struct LaunchArgs {
  const __nv_bfloat16* q;
  const __nv_bfloat16* k_cache;
  const __nv_bfloat16* v_cache;
  const int32_t* block_tables;
  const int32_t* token_seq;
  const int32_t* context_lens;
  __nv_bfloat16* out;
  float* workspace;
  size_t workspace_bytes;
  AttentionRotary rotary;  // positions set: q unrotated, the newest K and V not in the cache yet (kRotary)
};

// Launches the attention kernel; with `combine` and more than one split, the combine kernel after it. Returns
// what the attention kernel left: the merged rows in `out` when it has one split, else the partials.
template <int kHeadDim, bool kStaged, typename B, bool kRotary = false>
AttentionPartials Launch(const LaunchArgs& a, const AttentionShape& s, int splits, bool combine,
                         cudaStream_t stream) {
  const dim3 grid(s.num_tokens, s.num_kv_heads, splits);
  const int min_partition = MinRowPartition(s.num_tokens);
  LaunchWithPdl(PagedAttentionKernel<kHeadDim, kStaged, B, kRotary>, grid, dim3(B::kThreads),
                KernelSharedBytes<kHeadDim, kStaged, B, kRotary>(), stream, a.q, a.k_cache, a.v_cache,
                a.block_tables, a.token_seq, a.context_lens, a.out, a.workspace, s, min_partition, a.rotary);
  const AttentionPartials partials{a.workspace,   a.out,    a.context_lens, s.num_tokens,
                                   s.num_q_heads, kHeadDim, splits,         min_partition};
  if (splits > 1 && combine) {
    LaunchWithPdl(CombineKernel<kHeadDim>, dim3(s.num_tokens, s.num_q_heads), dim3(kHeadDim), 0, stream,
                  partials, a.out);
  }
  return partials;
}

template <int kHeadDim>
AttentionPartials LaunchVariant(const LaunchArgs& a, const AttentionShape& s, bool combine,
                                cudaStream_t stream) {
  if constexpr (kHeadDim == 64) {
    if (UseWhole(s)) return Launch<kHeadDim, true, WholeBlock>(a, s, 1, combine, stream);
  }
  const int splits = PlanSplits(s, a.workspace_bytes);
  if (UseStaged(s)) return Launch<kHeadDim, true, SplitBlock>(a, s, splits, combine, stream);
  return Launch<kHeadDim, false, SplitBlock>(a, s, splits, combine, stream);
}

void CheckShape(const AttentionShape& shape) {
  const int group = shape.num_kv_heads > 0 ? shape.num_q_heads / shape.num_kv_heads : 0;
  if (group < 1 || group > kMaxGroup || group * shape.num_kv_heads != shape.num_q_heads) {
    CudaFail("PagedAttention", "needs 1..8 query heads per KV head", __FILE__, __LINE__);
  }
  if (shape.head_dim != 64 && shape.head_dim != 128) {
    CudaFail("PagedAttention", "head_dim must be 64 or 128", __FILE__, __LINE__);
  }
  if (shape.block_size <= 0 || shape.block_size % kAttentionBlockSizeMultiple != 0) {
    CudaFail("PagedAttention", "block_size must be a multiple of 16", __FILE__, __LINE__);
  }
}

// DOZE_ATTENTION_ROTARY=0 keeps the rotary out of the attention (measurements).
bool RotaryEnabled() {
  static const bool enabled = EnvFlag("DOZE_ATTENTION_ROTARY");
  return enabled;
}

// PagedAttention and PagedAttentionUnmerged: the shape checked, then the launches, with or without the
// combine kernel.
AttentionPartials Attend(const LaunchArgs& a, const AttentionShape& shape, bool combine,
                         cudaStream_t stream) {
  if (shape.num_tokens == 0) return {};
  CheckShape(shape);
  if (shape.head_dim == 64) return LaunchVariant<64>(a, shape, combine, stream);
  return LaunchVariant<128>(a, shape, combine, stream);
}

}  // namespace

size_t PagedAttentionWorkspaceBytes(int max_tokens, int num_q_heads, int num_kv_heads, int head_dim) {
  const int wave = std::max(WaveBlocksFor(head_dim, false), WaveBlocksFor(head_dim, true));
  const int max_split_rows = std::min(max_tokens, (wave - 1) / std::max(num_kv_heads, 1));
  return PartialBytes(std::max(max_split_rows, 1), num_q_heads, head_dim, kMaxSplits);
}

void PagedAttention(const __nv_bfloat16* q, const __nv_bfloat16* k_cache, const __nv_bfloat16* v_cache,
                    const int32_t* block_tables, const int32_t* token_seq, const int32_t* context_lens,
                    __nv_bfloat16* out, float* workspace, size_t workspace_bytes, const AttentionShape& shape,
                    cudaStream_t stream) {
  Attend({q, k_cache, v_cache, block_tables, token_seq, context_lens, out, workspace, workspace_bytes, {}},
         shape, /*combine=*/true, stream);
}

AttentionPartials PagedAttentionUnmerged(const __nv_bfloat16* q, const __nv_bfloat16* k_cache,
                                         const __nv_bfloat16* v_cache, const int32_t* block_tables,
                                         const int32_t* token_seq, const int32_t* context_lens,
                                         __nv_bfloat16* out, float* workspace, size_t workspace_bytes,
                                         const AttentionShape& shape, cudaStream_t stream) {
  return Attend(
      {q, k_cache, v_cache, block_tables, token_seq, context_lens, out, workspace, workspace_bytes, {}},
      shape, /*combine=*/false, stream);
}

bool PagedAttentionRotates(const AttentionShape& shape) { return RotaryEnabled() && UseWhole(shape); }

void PagedAttentionWithRotary(const __nv_bfloat16* q, const __nv_bfloat16* k_cache,
                              const __nv_bfloat16* v_cache, const int32_t* block_tables,
                              const int32_t* token_seq, const int32_t* context_lens, __nv_bfloat16* out,
                              float* workspace, size_t workspace_bytes, const AttentionShape& shape,
                              const AttentionRotary& rotary, cudaStream_t stream) {
  if (shape.num_tokens == 0) return;
  CheckShape(shape);
  if (!PagedAttentionRotates(shape) || rotary.positions == nullptr) {
    CudaFail("PagedAttentionWithRotary", "a launch PagedAttentionRotates does not take", __FILE__, __LINE__);
  }
  const LaunchArgs args{q,   k_cache,   v_cache,         block_tables, token_seq, context_lens,
                        out, workspace, workspace_bytes, rotary};
  Launch<64, true, WholeBlock, true>(args, shape, 1, /*combine=*/true, stream);
}

}  // namespace doze::kernels

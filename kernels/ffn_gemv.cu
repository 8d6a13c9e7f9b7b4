#include <algorithm>

#include "kernels/cuda_check.h"
#include "kernels/decode_epilogue.cuh"
#include "kernels/device_info.h"
#include "kernels/env_knob.h"
#include "kernels/ffn_gemv.h"
#include "kernels/norm_stage.cuh"
#include "kernels/pdl.cuh"
#include "kernels/pending_residual.cuh"
#include "kernels/tma.cuh"
#include "kernels/vec.cuh"

namespace doze::kernels {
namespace {

// A block's 16 warps serve a group of 16 consecutive intermediate indices, one each; the group is one 32-byte
// sector (two 16-byte pieces) of each down_proj row. (Groups of 8 in blocks of 8 warps, half a sector a row:
// H100 batch 1 0.568 ms against 0.557; kernels/PERF_NOTES.md.)
constexpr int kWarps = 16;
constexpr int kThreads = kWarps * 32;
constexpr int kPieces = kWarps / 8;               // of a down row in a group
constexpr int kRowsPerPass = kThreads / kPieces;  // down rows the block's threads cover at once
constexpr int kDownRows = (kFfnGemvMaxHidden + kRowsPerPass - 1) / kRowsPerPass;  // a thread's rows
// 16-byte vectors of one hidden-size row a lane holds (vectors lane + 32 u).
constexpr int kVecsPerLane = kFfnGemvMaxHidden / 8 / 32;

struct Params {
  const __nv_bfloat16* residual;     // [hidden]
  const __nv_bfloat16* norm_weight;  // [hidden]
  float eps;
  const __nv_bfloat16* gate_up;  // [2 * intermediate, hidden]
  const __nv_bfloat16* down;     // [hidden, intermediate]
  int64_t* pending;              // [hidden]
  int hidden, intermediate;
  int stage_rotation;  // vectors between blocks' first staged ones (StageRotation)
};

// Stages of up rows in shared memory (kCopyUp): a round's 16 rows each.
constexpr int kRowStages = 3;

// What a thread holds of one group: its warp's index's gate row and up row (the up row left unloaded in a
// round whose up rows come by bulk copies), and its down rows' piece (rows thread / kPieces + kRowsPerPass j,
// piece thread % kPieces).
struct GroupWeights {
  Bf16x8 gate_up[2][kVecsPerLane];
  Bf16x8 down[kDownRows];
};

// Group g's weights in registers, the up row only `with_up` (zeros past the intermediate size).
__device__ __forceinline__ void LoadGroup(const Params& p, int g, GroupWeights& w, bool with_up) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, num_vecs = p.hidden / 8;
  const int item = g * kWarps + warp;
  const bool valid = item < p.intermediate;
  const int64_t i = valid ? item : 0;
  const auto load_row = [&](int c) {
    const Bf16x8* row = reinterpret_cast<const Bf16x8*>(p.gate_up + (c * p.intermediate + i) * p.hidden);
#pragma unroll
    for (int u = 0; u < kVecsPerLane; ++u) {
      const int v = lane + 32 * u;
      w.gate_up[c][u] = LoadVecOrZero(row + v, valid && v < num_vecs);
    }
  };
  load_row(0);
  if (with_up) load_row(1);
  const int column = g * kWarps + 8 * (threadIdx.x % kPieces);
  const bool piece_valid = column < p.intermediate;
#pragma unroll
  for (int j = 0; j < kDownRows; ++j) {
    const int r = threadIdx.x / kPieces + kRowsPerPass * j;
    const bool valid_row = piece_valid && r < p.hidden;
    const int64_t offset = valid_row ? static_cast<int64_t>(r) * p.intermediate + column : 0;
    w.down[j] = LoadVecOrZero(reinterpret_cast<const Bf16x8*>(p.down + offset), valid_row);
  }
}

// Thread 0 asks for group g's 16 up rows ([16, hidden], contiguous) in `stage` by one bulk copy counted on
// `full`; a group past the intermediate size copies nothing and completes the phase at once.
__device__ __forceinline__ void IssueUpRows(const Params& p, int g, Bf16x8* stage, uint64_t* full) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const bool valid = g * kWarps < p.intermediate;
  const uint32_t bytes = valid ? kWarps * p.hidden * sizeof(__nv_bfloat16) : 0;
  BarrierExpectBytes(full, bytes);
  if (valid)
    BulkLoad(stage, p.gate_up + (static_cast<int64_t>(p.intermediate) + g * kWarps) * p.hidden, bytes, full);
#endif
}

// The warp's index's activation bf16(silu(g) * u), its dot products in NormSwiGluGemv's lane order and warp
// sum; the up row from `up` in shared memory where `copied`. 0 past the intermediate size.
__device__ __forceinline__ float Activation(const Params& p, const Bf16x8* xs, const GroupWeights& w,
                                            const Bf16x8* up, bool valid, bool copied) {
  const int lane = threadIdx.x & 31, num_vecs = p.hidden / 8;
  float sum[2] = {0.f, 0.f};
  const auto accumulate = [&](auto up_vector) {
#pragma unroll
    for (int u = 0; u < kVecsPerLane; ++u) {
      const int v = lane + 32 * u;
      if (v >= num_vecs) break;
      float xv[8], gv[8], uv[8];
      Bf16x8ToFloat(LoadVec(xs + v), xv);
      Bf16x8ToFloat(w.gate_up[0][u], gv);
#pragma unroll
      for (int e = 0; e < 8; ++e) sum[0] = fmaf(gv[e], xv[e], sum[0]);
      Bf16x8ToFloat(up_vector(u, v), uv);
#pragma unroll
      for (int e = 0; e < 8; ++e) sum[1] = fmaf(uv[e], xv[e], sum[1]);
    }
  };
  if (copied) {
    accumulate([&](int, int v) { return LoadVec(up + v); });
  } else {
    accumulate([&](int u, int) { return w.gate_up[1][u]; });
  }
  const float a = RoundBf16(SwiGlu(WarpSum(sum[0]), WarpSum(sum[1])));
  return valid ? a : 0.f;
}

// Block b serves groups b, b + gridDim.x, ...: each round's weights load while the round before is computed
// (the first before the wait), and the activations of a round pass through shared memory, double-buffered so
// that one barrier a round suffices. With kCopyUp the up rows of every round but the last come by bulk copies
// into kRowStages stages of shared memory instead of through registers, asked for after the wait: the copy
// engine carries a third of the bytes beside the threads' loads, and the kernel before, whose few loads the
// first group's weights share the memory with until the wait, has a third fewer beside it
// (kernels/PERF_NOTES.md).
template <bool kCopyUp>
static __global__ void __launch_bounds__(kThreads, 1) FfnGemvKernel(Params p) {
  __shared__ Bf16x8 xs[2 * kFfnGemvMaxHidden / 8];  // x [hidden / 8], then the norm weight [hidden / 8]
  __shared__ float act[2][kWarps];
  __shared__ float norm_scratch[kWarps][1];
  __shared__ __align__(8) uint64_t full[kRowStages];
  extern __shared__ __align__(128) Bf16x8 stages[];  // kCopyUp: [kRowStages][kWarps][hidden / 8]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, num_vecs = p.hidden / 8;
  const int groups = (p.intermediate + kWarps - 1) / kWarps;
  const int rounds = (groups + gridDim.x - 1) / gridDim.x;  // the same for every block (zeros past the end)
  const int piece = threadIdx.x % kPieces;
  const auto stage_at = [&](int s) { return stages + s * kWarps * num_vecs; };  // [kWarps][hidden / 8]
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  if constexpr (kCopyUp) __trap();  // no bulk copies before sm_90: the host never launches it there
#endif
  // The last round's up rows through registers: where a block has one round more than others (304 groups on
  // 132 blocks), its copy engine would otherwise be its slower path (H100 batch 1 -1 to -2 us a step).
  const int copied_rounds = kCopyUp ? max(1, rounds - 1) : 0;
  GroupWeights w;
  LoadGroup(p, blockIdx.x, w, copied_rounds == 0);  // weights are constant: before the wait
  StageNormWeight<kThreads>(p.norm_weight, p.hidden, xs + num_vecs);
  GridDependencyWait();
  LaunchDependents();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if constexpr (kCopyUp) {
    if (threadIdx.x == 0) {
      for (int s = 0; s < kRowStages; ++s) BarrierInit(&full[s]);
      FenceBarrierInit();  // the first wait on them follows the norm's block barriers
      for (int s = 0; s < kRowStages && s < copied_rounds; ++s)
        IssueUpRows(p, blockIdx.x + s * gridDim.x, stage_at(s), &full[s]);
    }
  }
#endif
  const Bf16x8* src = reinterpret_cast<const Bf16x8*>(p.residual);
  const int first = RotationStart(p.stage_rotation, num_vecs);
  for (int i = threadIdx.x; i < num_vecs; i += kThreads) {
    const int v = RotatedIndex(i, first, num_vecs);
    StoreVec(xs + v, LoadVec(src + v));
  }
  NormalizeStagedRows<kWarps, 1>(xs, xs + num_vecs, 1, p.hidden, p.eps, norm_scratch);
  __syncthreads();
  float shares[kDownRows] = {};
  for (int round = 0, g = blockIdx.x; round < rounds; ++round, g += gridDim.x) {
    const int stage = round % kRowStages;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (kCopyUp && round < copied_rounds) BarrierWait(&full[stage], (round / kRowStages) & 1);
#endif
    const float a = Activation(p, xs, w, stage_at(stage) + warp * num_vecs,
                               g * kWarps + warp < p.intermediate, round < copied_rounds);
    if (lane == 0) act[round & 1][warp] = a;
    __syncthreads();  // also: every warp is done with the stage's rows
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if constexpr (kCopyUp) {
      if (threadIdx.x == 0 && round + kRowStages < copied_rounds)
        IssueUpRows(p, g + kRowStages * gridDim.x, stage_at(stage), &full[stage]);
    }
#endif
    float acts[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) acts[e] = act[round & 1][8 * piece + e];
#pragma unroll
    for (int j = 0; j < kDownRows; ++j) {
      float dv[8];
      Bf16x8ToFloat(w.down[j], dv);
      float dot = 0.f;
#pragma unroll
      for (int e = 0; e < 8; ++e) dot = fmaf(dv[e], acts[e], dot);
      shares[j] += dot;
    }
    if (round + 1 < rounds) LoadGroup(p, g + gridDim.x, w, round + 1 >= copied_rounds);
  }
  // A row's pieces are on adjacent lanes: added in piece order by the first.
#pragma unroll
  for (int j = 0; j < kDownRows; ++j) {
#pragma unroll
    for (int offset = 1; offset < kPieces; offset <<= 1)
      shares[j] += __shfl_xor_sync(0xffffffffu, shares[j], offset);
    const int r = threadIdx.x / kPieces + kRowsPerPass * j;
    if (piece == 0 && r < p.hidden) AddPending(p.pending + r, shares[j]);
  }
}

// The up rows' stages, sized for the largest hidden size so that the one opt-in of each variant serves every
// shape.
constexpr size_t kStagesBytes = kRowStages * kWarps * kFfnGemvMaxHidden * sizeof(__nv_bfloat16);

// One wave of the variant's blocks (H100: 132 blocks, 2.3 groups each; 102 blocks 0.570 ms at batch 1, 76
// blocks 0.619, against 0.557); DOZE_FFN_BLOCKS sets the grid (measurements).
template <bool kCopyUp>
void Launch(const Params& p, cudaStream_t stream) {
  constexpr size_t shared = kCopyUp ? kStagesBytes : 0;
  static const int per_sm = [] {
    if constexpr (kCopyUp) {
      CUDA_CHECK(cudaFuncSetAttribute(FfnGemvKernel<kCopyUp>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(shared)));
    }
    int blocks = 0;
    CUDA_CHECK(
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, FfnGemvKernel<kCopyUp>, kThreads, shared));
    return std::max(blocks, 1);
  }();
  static const int wanted = EnvInt("DOZE_FFN_BLOCKS", 0);
  const int groups = (p.intermediate + kWarps - 1) / kWarps;
  const int blocks =
      std::max(1, std::min({groups, per_sm * MultiprocessorCount(), wanted > 0 ? wanted : groups}));
  LaunchWithPdl(FfnGemvKernel<kCopyUp>, dim3(blocks), dim3(kThreads), shared, stream, p);
}

}  // namespace

bool FfnGemvTakes(int m, int hidden, int intermediate) {
  return m == 1 && hidden > 0 && hidden % 8 == 0 && hidden <= kFfnGemvMaxHidden && intermediate > 0 &&
         intermediate % 16 == 0;
}

void FfnGemv(const NormInput& in, const __nv_bfloat16* gate_up, const __nv_bfloat16* down, int64_t* pending,
             int hidden, int intermediate, cudaStream_t stream) {
  if (!FfnGemvTakes(1, hidden, intermediate) || in.pending != nullptr)
    CudaFail("FfnGemv", "needs hidden % 8 == 0 up to 1,024, intermediate % 16 == 0 and no pending input",
             __FILE__, __LINE__);
  const Params p{in.residual, in.weight, in.eps,       gate_up,        down,
                 pending,     hidden,    intermediate, StageRotation()};
  // The bulk copies need sm_90 (before it the kernel's copies compile to nothing); DOZE_FFN_COPY_UP=0 loads
  // the up rows through registers like the rest (measurements).
  static const bool copy_up = EnvFlag("DOZE_FFN_COPY_UP") && ComputeCapabilityMajor() >= 9;
  if (copy_up) {
    Launch<true>(p, stream);
  } else {
    Launch<false>(p, stream);
  }
}

}  // namespace doze::kernels

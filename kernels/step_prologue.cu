#include "kernels/cuda_check.h"
#include "kernels/pdl.cuh"
#include "kernels/rms_norm.cuh"
#include "kernels/rms_norm.h"
#include "kernels/rotary_angle.cuh"
#include "kernels/step_prologue.h"
#include "kernels/vec.cuh"

namespace doze::kernels {
namespace {

constexpr int kThreads = kAddRmsNormThreads;

// Row r's embedding (zeros for a padding row) into the residual stream, then its norm, as GatherRows and
// RmsNorm compute them.
template <int kVecs>
__device__ __forceinline__ void EmbedAndNormRow(const StepPrologueArgs& a, int r, float* scratch) {
  const int64_t base = static_cast<int64_t>(r) * a.hidden;
  const int64_t id = a.token_ids[r];
  HeldRow<kVecs> row;
  ForEachHeldVector<kVecs>(a.hidden, kThreads, [&](int j, int i) {
    if (id >= 0) {
      LoadBf16x8(a.embedding + id * a.hidden + i, row.v[j]);
    } else {
#pragma unroll
      for (int q = 0; q < 8; ++q) row.v[j][q] = 0.f;
    }
    LoadBf16x8(a.norm_weight + i, row.w[j]);
    StoreBf16x8(a.residual + base + i, row.v[j]);
  });
  WriteHeldRow(row, a.normed + base, a.hidden, kThreads,
               HeldRowInvRms(row, a.hidden, kThreads, a.eps, scratch));
}

// Blocks [0, num_rows) embed and normalize a row each; with a table, blocks [num_rows, 2 * num_rows) write
// a row's cos and sin (RotaryTable's values).
template <int kVecs>
static __global__ void __launch_bounds__(kThreads) StepPrologueKernel(StepPrologueArgs a) {
  __shared__ float scratch[kThreads / 32];
  GridDependencyWait();  // the step's inputs are the kernel before's output
  LaunchDependents();
  if (blockIdx.x < a.num_rows) return EmbedAndNormRow<kVecs>(a, blockIdx.x, scratch);
  const int r = blockIdx.x - a.num_rows, half = a.head_dim / 2;
  WriteRotaryRow(static_cast<float>(a.positions[r]), a.inv_freq, a.cos_sin + static_cast<int64_t>(r) * half,
                 half);
}

}  // namespace

void StepPrologue(const StepPrologueArgs& args, cudaStream_t stream) {
  if (args.num_rows == 0) return;
  CheckNormHidden("StepPrologue", args.hidden);
  if (args.cos_sin != nullptr && args.head_dim % 2 != 0)
    CudaFail("StepPrologue", "head_dim must be even", __FILE__, __LINE__);
  const int blocks = args.num_rows * (args.cos_sin != nullptr ? 2 : 1);
  WithNormVecs(args.hidden, [&](auto vecs) {
    LaunchWithPdl(StepPrologueKernel<decltype(vecs)::value>, dim3(blocks), dim3(kThreads), 0, stream, args);
  });
}

}  // namespace doze::kernels

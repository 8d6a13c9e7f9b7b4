#include <algorithm>

#include "kernels/cuda_check.h"
#include "kernels/gather_row.cuh"
#include "kernels/pdl.cuh"
#include "kernels/step_inputs.h"

namespace doze::kernels {
namespace {

constexpr int kThreads = 256;

// Row `row`'s embedding into gather.out: its token id is the host's, or the previous step's token where the
// row has a source (the value StageStepInputsKernel writes to ints[row]).
__device__ void GatherEmbedding(const int32_t* __restrict__ host_ints, int sources_offset,
                                const int32_t* __restrict__ previous, const EmbeddingGather& gather,
                                int row) {
  int32_t token = host_ints[row];
  const int32_t source = sources_offset >= 0 ? host_ints[sources_offset + row] : -1;
  GridDependencyWait();  // the previous step reads gather.out and wrote `previous`
  if (source >= 0) token = previous[source];
  CopyTableRow(gather.table, token, gather.out + static_cast<int64_t>(row) * gather.width, gather.width);
}

static __global__ void StageStepInputsKernel(
    const int32_t* __restrict__ host_ints,  // [num_ints], pinned host memory
    int32_t* __restrict__ ints,             // [num_ints]
    int num_ints, int num_tokens, int sources_offset,
    const int32_t* __restrict__ previous,  // [previous step's sampled rows]
    int32_t* __restrict__ published,       // [num_published], pinned host memory
    int num_published, EmbeddingGather gather, int gather_first_block) {
  if (gather.table != nullptr && static_cast<int>(blockIdx.x) >= gather_first_block) {
    GatherEmbedding(host_ints, sources_offset, previous, gather, blockIdx.x - gather_first_block);
    return;
  }
  const int i = blockIdx.x * kThreads + threadIdx.x;
  // The host's values cross the bus while the previous kernel finishes.
  const int32_t value = i < num_ints ? host_ints[i] : 0;
  const int32_t source = i < num_tokens && sources_offset >= 0 ? host_ints[sources_offset + i] : -1;
  GridDependencyWait();  // the previous step reads `ints` and wrote `previous`
  if (gather.table == nullptr) LaunchDependents();
  if (i < num_ints) ints[i] = source >= 0 ? previous[source] : value;
  // The host reads `published` after this kernel's completion, which makes the writes visible to it.
  if (i < num_published) published[i] = previous[i];
}

}  // namespace

void StageStepInputs(const int32_t* host_ints, int32_t* ints, int num_ints, int num_tokens,
                     int sources_offset, const int32_t* previous, int32_t* published, int num_published,
                     cudaStream_t stream, const EmbeddingGather& gather) {
  const int threads = std::max(num_ints, num_published);
  if (threads == 0) return;
  if (num_tokens > num_ints || (sources_offset >= 0 && sources_offset + num_tokens > num_ints))
    CudaFail("StageStepInputs", "token ids and sources must lie inside the inputs", __FILE__, __LINE__);
  if (previous == nullptr && (sources_offset >= 0 || num_published > 0))
    CudaFail("StageStepInputs", "sources and published tokens need the previous tokens", __FILE__, __LINE__);
  if (gather.table != nullptr && (gather.out == nullptr || gather.width <= 0 || gather.width % 8 != 0))
    CudaFail("StageStepInputs", "the gather needs an output and a width that is a multiple of 8", __FILE__,
             __LINE__);
  const int staging_blocks = (threads + kThreads - 1) / kThreads;
  const int gather_blocks = gather.table != nullptr ? num_tokens : 0;
  LaunchWithPdl(StageStepInputsKernel, dim3(staging_blocks + gather_blocks), dim3(kThreads), 0, stream,
                host_ints, ints, num_ints, num_tokens, sources_offset, previous, published, num_published,
                gather, staging_blocks);
}

}  // namespace doze::kernels

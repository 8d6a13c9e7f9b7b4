#include "worker/runtime/cuda_backend.h"

#include <cuda_runtime.h>

#include "worker/backend/cuda/cuda_model_runner.h"

namespace doze {

bool CudaDeviceAvailable() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

absl::StatusOr<std::unique_ptr<ModelRunner>> CreateCudaRunner(const Checkpoint& checkpoint,
                                                              int kv_cache_tokens, double gpu_memory_fraction,
                                                              int max_num_seqs) {
  if (!CudaDeviceAvailable())
    return absl::FailedPreconditionError("backend cuda: no CUDA device is available");
  CudaRunnerOptions options;
  options.gpu_memory_fraction = gpu_memory_fraction;
  if (kv_cache_tokens > 0)
    options.num_kv_blocks = (kv_cache_tokens + options.block_size - 1) / options.block_size;
  options.max_num_seqs = max_num_seqs;
  auto runner = CudaModelRunner::Create(checkpoint, options);
  if (!runner.ok()) return runner.status();
  return std::unique_ptr<ModelRunner>(std::move(*runner));
}

}  // namespace doze

#include "worker/runtime/cuda_backend.h"

#include <cuda_runtime.h>

#include "kernels/cuda_check.h"
#include "worker/backend/cuda/cuda_model_runner.h"
#include "worker/backend/cuda/device_memory.h"
#include "worker/common/status_macros.h"

namespace doze {

bool CudaDeviceAvailable() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

absl::StatusOr<double> MeasureDeviceCopyBandwidth() {
  constexpr size_t kBytes = size_t{256} << 20;
  constexpr int kCopies = 5;
  cuda::DeviceBuffer from, to;
  RETURN_IF_ERROR(from.Allocate(kBytes, "the bandwidth measurement's source"));
  RETURN_IF_ERROR(to.Allocate(kBytes, "the bandwidth measurement's target"));
  CUDA_CHECK(cudaMemset(from.get(), 0x5a, kBytes));
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  float best_ms = 0;
  for (int i = 0; i <= kCopies; ++i) {  // the first copy is a warm-up
    CUDA_CHECK(cudaEventRecord(start));
    CUDA_CHECK(cudaMemcpy(to.get(), from.get(), kBytes, cudaMemcpyDeviceToDevice));
    CUDA_CHECK(cudaEventRecord(stop));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (i > 0 && (best_ms == 0 || ms < best_ms)) best_ms = ms;
  }
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  return 2.0 * kBytes / (best_ms * 1e-3);
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

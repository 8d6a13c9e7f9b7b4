#include "worker/runtime/cuda_backend.h"

namespace doze {

bool CudaDeviceAvailable() { return false; }

absl::StatusOr<double> MeasureDeviceCopyBandwidth() {
  return absl::FailedPreconditionError("this build has no CUDA backend");
}

absl::StatusOr<std::unique_ptr<ModelRunner>> CreateCudaRunner(const Checkpoint&, int, double, int) {
  return absl::FailedPreconditionError(
      "backend cuda: this build has no CUDA backend (built with DOZE_CUDA=OFF)");
}

}  // namespace doze

// The CUDA backend as the backend factory sees it; built from cuda_backend.cc with CUDA, cuda_backend_none.cc
// without.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "worker/engine/model_runner.h"
#include "worker/model/checkpoint.h"

namespace doze {

// Whether this build has the CUDA backend and the machine a usable GPU.
bool CudaDeviceAvailable();

// A CudaModelRunner over `checkpoint`; kv_cache_tokens > 0 fixes the pool size, else gpu_memory_fraction
// sizes it.
absl::StatusOr<std::unique_ptr<ModelRunner>> CreateCudaRunner(const Checkpoint& checkpoint,
                                                              int kv_cache_tokens, double gpu_memory_fraction,
                                                              int max_num_seqs);

}  // namespace doze

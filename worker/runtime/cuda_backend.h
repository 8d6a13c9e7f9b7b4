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

// The device's memory bandwidth as a large device-to-device copy measures it, bytes read plus bytes written
// a second (the roofline `doze bench` reports against): the best of a few timed copies of 256 MiB.
absl::StatusOr<double> MeasureDeviceCopyBandwidth();

// A CudaModelRunner over `checkpoint`; kv_cache_tokens > 0 fixes the pool size, else gpu_memory_fraction
// sizes it.
absl::StatusOr<std::unique_ptr<ModelRunner>> CreateCudaRunner(const Checkpoint& checkpoint,
                                                              int kv_cache_tokens, double gpu_memory_fraction,
                                                              int max_num_seqs);

}  // namespace doze

// Picks and builds the model runner for a backend name: "cpu", "cuda" or "auto" (CUDA when a GPU is present).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "worker/engine/model_runner.h"
#include "worker/model/checkpoint.h"

namespace doze {

struct BackendOptions {
  std::string name = "auto";
  int kv_cache_tokens = 0;  // 0: the backend's default size
  double gpu_memory_fraction = 0.9;
  int num_threads = 0;
  int max_num_seqs = 64;
};

struct BackendRunner {
  std::string name;  // the backend chosen: "cpu" or "cuda"
  std::unique_ptr<ModelRunner> runner;
};

// Builds the runner; `checkpoint` must outlive it. InvalidArgument for an unknown name, FailedPrecondition
// when "cuda" is asked for and this build or machine has none.
absl::StatusOr<BackendRunner> CreateBackendRunner(const Checkpoint& checkpoint,
                                                  const BackendOptions& options);

// KV cache bytes per token of the CPU backend (fp32 K and V of every layer).
size_t CpuKvBytesPerToken(const ModelConfig& config);

}  // namespace doze

#include "worker/runtime/backend_factory.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "worker/backend/cpu/cpu_model_runner.h"
#include "worker/runtime/cuda_backend.h"

namespace doze {
namespace {

// The CPU backend's default cache: 1 GiB, enough for 43k tokens of Qwen2.5-0.5B.
constexpr size_t kCpuDefaultKvBytes = size_t{1} << 30;

BackendRunner MakeCpuRunner(const Checkpoint& checkpoint, const BackendOptions& options) {
  CpuRunnerOptions cpu;
  int tokens = options.kv_cache_tokens;
  if (tokens <= 0) tokens = static_cast<int>(kCpuDefaultKvBytes / CpuKvBytesPerToken(checkpoint.config()));
  cpu.num_kv_blocks = std::max(1, (tokens + cpu.block_size - 1) / cpu.block_size);
  cpu.num_threads = options.num_threads;
  return BackendRunner{"cpu", std::make_unique<CpuModelRunner>(checkpoint, cpu)};
}

}  // namespace

size_t CpuKvBytesPerToken(const ModelConfig& config) {
  return size_t{2} * config.num_hidden_layers * config.kv_size() * sizeof(float);
}

absl::StatusOr<BackendRunner> CreateBackendRunner(const Checkpoint& checkpoint,
                                                  const BackendOptions& options) {
  bool cuda = options.name == "cuda" || (options.name == "auto" && CudaDeviceAvailable());
  if (cuda) {
    auto runner = CreateCudaRunner(checkpoint, options.kv_cache_tokens, options.gpu_memory_fraction,
                                   options.max_num_seqs);
    if (!runner.ok()) return runner.status();
    return BackendRunner{"cuda", *std::move(runner)};
  }
  if (options.name == "cpu" || options.name == "auto") return MakeCpuRunner(checkpoint, options);
  return absl::InvalidArgumentError(
      absl::StrCat("backend: unknown backend '", options.name, "' (expected auto, cpu or cuda)"));
}

}  // namespace doze

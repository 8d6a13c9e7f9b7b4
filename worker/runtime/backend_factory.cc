#include "worker/runtime/backend_factory.h"

#include <unistd.h>

#include <algorithm>
#include <new>

#include "absl/strings/str_cat.h"
#include "worker/backend/cpu/cpu_model_runner.h"
#include "worker/common/status_macros.h"
#include "worker/model/weight_values.h"
#include "worker/runtime/cuda_backend.h"

namespace doze {
namespace {

// The CPU backend's default cache: 1 GiB, enough for 43k tokens of Qwen2.5-0.5B.
constexpr size_t kCpuDefaultKvBytes = size_t{1} << 30;

// The machine's memory in bytes (0 when unknown).
size_t PhysicalMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : 0;
}

absl::StatusOr<BackendRunner> MakeCpuRunner(const Checkpoint& checkpoint, const BackendOptions& options) {
  // The CUDA backend counts them on the GPU as it uploads the weights.
  RETURN_IF_ERROR(CheckWeightsFinite(checkpoint.weights(), checkpoint.dir()));
  CpuRunnerOptions cpu;
  int64_t tokens = options.kv_cache_tokens;
  if (tokens <= 0)
    tokens = static_cast<int64_t>(kCpuDefaultKvBytes / CpuKvBytesPerToken(checkpoint.config()));
  const int64_t blocks = std::max<int64_t>(1, (tokens + cpu.block_size - 1) / cpu.block_size);
  const double bytes = static_cast<double>(blocks) * cpu.block_size * CpuKvBytesPerToken(checkpoint.config());
  const size_t memory = PhysicalMemoryBytes();
  const auto too_large = [&](const std::string& why) {
    return absl::ResourceExhaustedError(absl::StrCat("--kv-cache-tokens: a CPU KV cache of ", tokens,
                                                     " tokens needs ", bytes / (1 << 30), " GiB, ", why));
  };
  if (memory > 0 && bytes > static_cast<double>(memory))
    return too_large(
        absl::StrCat("more than this machine's ", static_cast<double>(memory) / (1 << 30), " GiB"));
  cpu.num_kv_blocks = static_cast<int>(blocks);
  cpu.num_threads = options.num_threads;
  try {
    return BackendRunner{"cpu", std::make_unique<CpuModelRunner>(checkpoint, cpu)};
  } catch (const std::bad_alloc&) {  // the cache (or the weights' copy) beside what else the machine holds
    return too_large("which could not be allocated beside the weights");
  }
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

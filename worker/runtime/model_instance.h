// Everything one served model needs, built from a Hugging Face directory: checkpoint, tokenizer, backend
// runner and engine. Used by `doze generate`, `doze chat`, `doze bench` and the worker process.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/engine/engine.h"
#include "worker/engine/tokenizer_text_decoder.h"
#include "worker/model/checkpoint.h"
#include "worker/runtime/backend_factory.h"
#include "worker/runtime/prompt_input.h"
#include "worker/tokenizer/chat_template.h"
#include "worker/tokenizer/tokenizer.h"

namespace doze {

// The most CPU backend threads a model instance takes.
constexpr int kMaxThreads = 1024;

struct ModelInstanceOptions {
  std::string model_dir;
  std::string backend = "auto";  // auto | cpu | cuda (auto: cuda when a GPU is there)
  int kv_cache_tokens = 0;       // 0: sized by the backend (CPU: 1 GiB of cache; CUDA: gpu_memory_fraction)
  double gpu_memory_fraction = 0.9;
  int max_num_seqs = 64;
  int max_num_batched_tokens = 8192;
  int num_threads = 0;  // CPU backend; 0: every core
  std::optional<uint64_t> seed;
  bool async_scheduling = true;  // EngineConfig::async_scheduling
};

// OK, or InvalidArgument naming the first option out of its range (the flag's name: --max-num-seqs at least
// 1, --max-num-batched-tokens at least 1, --kv-cache-tokens not negative, --gpu-memory-fraction in (0, 1],
// --threads 0 to 1,024).
absl::Status ValidateModelInstanceOptions(const ModelInstanceOptions& options);

// The backend factory's options for `options`.
BackendOptions BackendOptionsFor(const ModelInstanceOptions& options);

// The engine's configuration for `options`: sizes from the options, end-of-sequence ids from
// generation_config.json (config.json's when it names none).
EngineConfig EngineConfigFor(const Checkpoint& checkpoint, const ModelInstanceOptions& options);

class ModelInstance {
 public:
  static absl::StatusOr<std::unique_ptr<ModelInstance>> Create(const ModelInstanceOptions& options);
  ~ModelInstance();

  Engine& engine() { return *engine_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const Checkpoint& checkpoint() const { return *checkpoint_; }
  ModelRunner& runner() { return *runner_; }
  // "cpu" or "cuda".
  const std::string& backend() const { return backend_; }
  // Turns a prompt into token ids: ids are checked against the vocabulary, text is encoded, messages are
  // rendered with the chat template (generation prompt added) and encoded.
  absl::StatusOr<std::vector<int32_t>> PromptTokenIds(const PromptInput& prompt) const;

 private:
  ModelInstance() = default;
  absl::Status CreateRunner(const ModelInstanceOptions& options);

  std::string backend_;
  std::unique_ptr<Checkpoint> checkpoint_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<TokenizerTextDecoderFactory> decoders_;
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace doze

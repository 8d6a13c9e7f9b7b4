#include "worker/runtime/model_instance.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "worker/backend/cpu/cpu_model_runner.h"
#include "worker/common/logging.h"
#include "worker/common/status_macros.h"
#include "worker/runtime/backend_factory.h"

namespace doze {

absl::Status ValidateModelInstanceOptions(const ModelInstanceOptions& options) {
  const auto out_of_range = [](const char* flag, const char* range, double value) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": must be ", range, ", got ", value));
  };
  if (options.max_num_seqs < 1) return out_of_range("max-num-seqs", "at least 1", options.max_num_seqs);
  if (options.max_num_batched_tokens < 1) {
    return out_of_range("max-num-batched-tokens", "at least 1", options.max_num_batched_tokens);
  }
  if (options.kv_cache_tokens < 0)
    return out_of_range("kv-cache-tokens", "0 (the backend's default) or more", options.kv_cache_tokens);
  if (!(options.gpu_memory_fraction > 0 && options.gpu_memory_fraction <= 1))
    return out_of_range("gpu-memory-fraction", "in (0, 1]", options.gpu_memory_fraction);
  if (options.num_threads < 0 || options.num_threads > kMaxThreads)
    return out_of_range("threads", "0 (every core) to 1,024", options.num_threads);
  return absl::OkStatus();
}

BackendOptions BackendOptionsFor(const ModelInstanceOptions& options) {
  BackendOptions backend;
  backend.name = options.backend;
  backend.kv_cache_tokens = options.kv_cache_tokens;
  backend.gpu_memory_fraction = options.gpu_memory_fraction;
  backend.num_threads = options.num_threads;
  backend.max_num_seqs = options.max_num_seqs;
  return backend;
}

EngineConfig EngineConfigFor(const Checkpoint& checkpoint, const ModelInstanceOptions& options) {
  EngineConfig config;
  config.max_num_seqs = options.max_num_seqs;
  config.max_num_batched_tokens = options.max_num_batched_tokens;
  config.seed = options.seed;
  config.async_scheduling = options.async_scheduling;
  const GenerationConfig& generation = checkpoint.generation_config();
  const std::vector<int>& eos =
      generation.eos_token_ids.empty() ? checkpoint.config().eos_token_ids : generation.eos_token_ids;
  config.eos_token_ids.assign(eos.begin(), eos.end());
  return config;
}

ModelInstance::~ModelInstance() = default;

absl::StatusOr<std::unique_ptr<ModelInstance>> ModelInstance::Create(const ModelInstanceOptions& options) {
  RETURN_IF_ERROR(ValidateModelInstanceOptions(options));
  std::unique_ptr<ModelInstance> instance(new ModelInstance());
  ASSIGN_OR_RETURN(instance->checkpoint_, Checkpoint::Load(options.model_dir));
  ASSIGN_OR_RETURN(instance->tokenizer_, Tokenizer::FromFile(instance->checkpoint_->tokenizer_path()));
  RETURN_IF_ERROR(CheckTokenizerFitsVocab(*instance->tokenizer_, instance->checkpoint_->config().vocab_size,
                                          instance->checkpoint_->tokenizer_path()));
  instance->decoders_ = std::make_unique<TokenizerTextDecoderFactory>(instance->tokenizer_.get());
  RETURN_IF_ERROR(instance->CreateRunner(options));
  instance->engine_ = std::make_unique<Engine>(instance->runner_.get(), instance->decoders_.get(),
                                               EngineConfigFor(*instance->checkpoint_, options));
  return instance;
}

absl::Status ModelInstance::CreateRunner(const ModelInstanceOptions& options) {
  ASSIGN_OR_RETURN(BackendRunner created, CreateBackendRunner(*checkpoint_, BackendOptionsFor(options)));
  runner_ = std::move(created.runner);
  backend_ = created.name;
  DOZE_LOG(INFO) << "backend " << backend_ << ": " << runner_->num_kv_blocks() << " KV blocks of "
                 << runner_->block_size() << " tokens";
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> ModelInstance::PromptTokenIds(const PromptInput& prompt) const {
  return doze::PromptTokenIds(*tokenizer_, checkpoint_->config().vocab_size, prompt, "prompt_ids");
}

}  // namespace doze

#include "worker/runtime/model_instance.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "worker/backend/cpu/cpu_model_runner.h"
#include "worker/common/logging.h"
#include "worker/common/status_macros.h"
#include "worker/runtime/backend_factory.h"

namespace doze {

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
  std::unique_ptr<ModelInstance> instance(new ModelInstance());
  ASSIGN_OR_RETURN(instance->checkpoint_, Checkpoint::Load(options.model_dir));
  ASSIGN_OR_RETURN(instance->tokenizer_, Tokenizer::FromFile(instance->checkpoint_->tokenizer_path()));
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

#include "worker/service/worker_model.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "worker/common/logging.h"
#include "worker/runtime/backend_factory.h"
#include "worker/service/device_context.h"
#include "worker/tokenizer/chat_template.h"

namespace doze::service {

absl::StatusOr<std::unique_ptr<WorkerModel>> WorkerModel::Load(const ModelInstanceOptions& options,
                                                               const Marks& marks) {
  std::unique_ptr<WorkerModel> model(new WorkerModel());
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Load(options.model_dir);
  if (!checkpoint.ok()) return checkpoint.status();
  model->checkpoint_ = *std::move(checkpoint);

  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = absl::UnknownError("tokenizer not loaded");
  std::thread tokenizer_thread(
      [&tokenizer, path = model->checkpoint_->tokenizer_path()] { tokenizer = Tokenizer::FromFile(path); });
  if (CreateDeviceContext(options.backend) && marks.device_context) marks.device_context();
  absl::StatusOr<BackendRunner> runner = CreateBackendRunner(*model->checkpoint_, BackendOptionsFor(options));
  tokenizer_thread.join();
  if (!runner.ok()) return runner.status();
  if (!tokenizer.ok()) return tokenizer.status();
  if (absl::Status fits = CheckTokenizerFitsVocab(**tokenizer, model->checkpoint_->config().vocab_size,
                                                  model->checkpoint_->tokenizer_path());
      !fits.ok()) {
    return fits;
  }
  if (marks.weights) marks.weights();

  model->runner_ = std::move(runner->runner);
  model->backend_ = runner->name;
  model->tokenizer_ = *std::move(tokenizer);
  model->decoders_ = std::make_unique<TokenizerTextDecoderFactory>(model->tokenizer_.get());
  model->engine_config_ = EngineConfigFor(*model->checkpoint_, options);
  DOZE_LOG(INFO) << "backend " << model->backend_ << ": " << model->runner_->num_kv_blocks()
                 << " KV blocks of " << model->runner_->block_size() << " tokens";
  return model;
}

std::unique_ptr<Engine> WorkerModel::NewEngine() {
  return std::make_unique<Engine>(runner_.get(), decoders_.get(), engine_config_);
}

absl::StatusOr<std::vector<int32_t>> WorkerModel::PromptTokenIds(const PromptInput& prompt) const {
  return doze::PromptTokenIds(*tokenizer_, checkpoint_->config().vocab_size, prompt, "token_ids");
}

}  // namespace doze::service

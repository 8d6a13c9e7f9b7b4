// The model a worker serves: checkpoint, tokenizer and backend runner, loaded with the tokenizer parsed on a
// second thread while the backend creates its device context and takes the weights.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/engine/engine.h"
#include "worker/engine/tokenizer_text_decoder.h"
#include "worker/model/checkpoint.h"
#include "worker/runtime/model_instance.h"
#include "worker/tokenizer/tokenizer.h"

namespace doze::service {

// ModelInstance builds the same pieces one after the other; a worker's start-up is on the critical path of a
// request waiting for it, so the tokenizer (hundreds of milliseconds of JSON parsing) overlaps the device
// work.
class WorkerModel {
 public:
  // Marks of the start-up timeline, called on the loading thread.
  struct Marks {
    std::function<void()> device_context;  // when a device context was created
    std::function<void()> weights;         // weights in place
  };

  // Loads `options.model_dir` on the calling thread (the engine thread: it creates the device context).
  static absl::StatusOr<std::unique_ptr<WorkerModel>> Load(const ModelInstanceOptions& options,
                                                           const Marks& marks);

  ModelRunner& runner() { return *runner_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  // "cpu" or "cuda".
  const std::string& backend() const { return backend_; }
  // A new engine over the runner (the worker builds one at start and after every wake).
  std::unique_ptr<Engine> NewEngine();
  // Turns a prompt into token ids as ModelInstance::PromptTokenIds does: ids checked against the vocabulary,
  // text encoded, messages rendered with the chat template (generation prompt added) and encoded.
  // Thread-safe.
  absl::StatusOr<std::vector<int32_t>> PromptTokenIds(const PromptInput& prompt) const;

 private:
  WorkerModel() = default;

  std::string backend_;
  EngineConfig engine_config_;
  std::unique_ptr<Checkpoint> checkpoint_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<TokenizerTextDecoderFactory> decoders_;
  std::unique_ptr<ModelRunner> runner_;
};

}  // namespace doze::service

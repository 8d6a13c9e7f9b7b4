// A loaded Hugging Face model directory: configs, the mmap'd safetensors files and views of every weight.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/model/model_config.h"
#include "worker/model/model_weights.h"

namespace doze {

class SafetensorsFile;

// Owns the mapped files; the weight views stay valid for the Checkpoint's lifetime.
class Checkpoint {
 public:
  // Loads `dir`: config.json, generation_config.json (optional), model.safetensors or
  // model.safetensors.index.json with its shards. Every expected tensor is checked for presence, dtype and
  // shape.
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Load(const std::string& dir);
  ~Checkpoint();

  const std::string& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  const GenerationConfig& generation_config() const { return generation_config_; }
  const ModelWeights& weights() const { return weights_; }
  // Path of tokenizer.json in the directory.
  std::string tokenizer_path() const { return dir_ + "/tokenizer.json"; }
  // Total bytes of all weight tensors (tied embeddings counted once).
  size_t weight_bytes() const;

 private:
  Checkpoint() = default;

  std::string dir_;
  ModelConfig config_;
  GenerationConfig generation_config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  ModelWeights weights_;
};

}  // namespace doze

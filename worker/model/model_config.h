// The Qwen2 architecture parameters of a Hugging Face model directory (config.json + generation_config.json).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/model/tensor.h"

namespace doze {

// config.json of a Qwen2ForCausalLM checkpoint.
struct ModelConfig {
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;
  int head_dim = 0;  // config's head_dim when present, else hidden_size / num_attention_heads
  int vocab_size = 0;
  int max_position_embeddings = 0;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  DType torch_dtype = DType::kBF16;
  int bos_token_id = -1;           // -1 when absent
  std::vector<int> eos_token_ids;  // config.json's eos_token_id (int or list)

  int q_size() const { return num_attention_heads * head_dim; }
  int kv_size() const { return num_key_value_heads * head_dim; }
};

// generation_config.json: what the checkpoint's authors recommend for sampling.
struct GenerationConfig {
  std::vector<int> eos_token_ids;  // eos_token_id, an int or a list
  int bos_token_id = -1;
  int pad_token_id = -1;
  double temperature = 1.0;
  double top_p = 1.0;
  int top_k = 0;  // 0: off
  double repetition_penalty = 1.0;
  bool do_sample = false;
};

// Parses config.json text; errors name `source` (a path) and the offending key.
absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text, std::string_view source);

// Parses generation_config.json text.
absl::StatusOr<GenerationConfig> ParseGenerationConfig(std::string_view json_text, std::string_view source);

// The end-of-sequence and beginning ids must be rows of the model's vocabulary: an eos id past it would never
// be produced, and generation would never stop at one. Errors name `source`.
absl::Status CheckSpecialTokens(const GenerationConfig& generation, int vocab_size, std::string_view source);

}  // namespace doze

// Writes Hugging Face model directories with random Qwen2 weights: the test and demo models of `doze
// make-model`.
//
// The bytes depend only on the options, on any machine: values come from an integer RNG and exact float
// arithmetic, never from std distributions or libm. Tensor `name` of checkpoint seed `seed` takes element i
// from
//   key = Fnv1a64(name) ^ Mix64(seed)
//   z_i = Mix64(key + (i + 1) * 0x9E3779B97F4A7C15)     (the splitmix64 stream started at `key`)
//   s_i = ((z_i >> 32) * (2M + 1)) >> 32) - M           (an integer uniform in [-M, M])
//   v_i = s_i * 2^-26 (linear weights, embeddings, biases) or 1 + s_i * 2^-26 (norm weights), in fp32
// then rounds v_i to bf16, nearest-even. M gives a std of 0.02 for linear weights and embeddings, 0.05 for
// biases, and a range of +-0.1 around 1 for norms.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/model/model_config.h"
#include "worker/model/safetensors_writer.h"

namespace doze {

// What `doze make-model` asks for.
struct RandomCheckpointOptions {
  std::string preset = "tiny";  // "tiny" or "qwen2.5-0.5b"
  uint64_t seed = 0;
  bool tie_word_embeddings = true;  // false (--no-tie) writes a separate lm_head.weight
  std::string out_dir = {};         // created when missing
  // A tokenizer.json to copy in, with a Qwen2.5 tokenizer_config.json written beside it; optional.
  std::string tokenizer_path = {};
  // Shape overrides of the preset (initialised so that designated initialisers may leave them out).
  std::optional<int> hidden_size = {}, num_layers = {}, num_heads = {}, num_kv_heads = {}, head_dim = {},
                     intermediate_size = {}, vocab_size = {};
};

// Names of the presets, for help texts.
std::vector<std::string> RandomCheckpointPresets();

// The config.json contents the options describe: the preset with the overrides applied, validated.
absl::StatusOr<ModelConfig> RandomCheckpointConfig(const RandomCheckpointOptions& options);

// Writes model.safetensors (bf16), config.json, generation_config.json and, with a tokenizer path,
// tokenizer.json and tokenizer_config.json into options.out_dir. Streams the weights: memory stays small
// whatever the model size.
absl::Status WriteRandomCheckpoint(const RandomCheckpointOptions& options);

// Every Qwen2 weight of `config` in file order (embeddings, layers in forward order, final norm, lm_head when
// untied), each of `dtype`.
std::vector<TensorSpec> Qwen2TensorSpecs(const ModelConfig& config, DType dtype);

// The splitmix64 finaliser.
uint64_t Mix64(uint64_t x);
// 64-bit FNV-1a of `text`.
uint64_t Fnv1a64(std::string_view text);

// Values `first`..`first + count - 1` of tensor `name`'s random stream for checkpoint seed `seed`, as bf16
// bits.
void RandomTensorValues(uint64_t seed, std::string_view name, int64_t first, int64_t count, uint16_t* out);

}  // namespace doze

// Small Qwen2 models with random weights held in memory, and batches that drive them: what the CPU backend
// tests run, so they need no checkpoint on disk.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "worker/engine/batch_metadata.h"
#include "worker/model/model_config.h"
#include "worker/model/model_weights.h"

namespace doze::testing {

// Odd sizes on purpose: hidden and head_dim are not multiples of the 8-wide vectors, 3 query heads share 1 KV
// head.
ModelConfig TinyConfig();

// Random weights of `config` stored as `dtype`. Linear weights are large enough (+-0.3) that attention is far
// from uniform, so that a wrong mask or a wrong cache slot shows in the logits.
class TinyModel {
 public:
  TinyModel(const ModelConfig& config, DType dtype, uint32_t seed);
  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }

 private:
  // A new tensor of uniform values in [center - spread, center + spread], rounded to dtype_.
  TensorView Random(std::vector<int64_t> shape, float center, float spread);

  ModelConfig config_;
  DType dtype_;
  std::mt19937 rng_;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> storage_;
  ModelWeights weights_;
};

// One sequence's part of a step: `new_tokens` after `num_cached` tokens already in its blocks.
struct SeqStep {
  std::vector<int32_t> new_tokens;
  int num_cached = 0;
  std::vector<int32_t> blocks;  // the sequence's block table
  bool all_logits = false;      // logits of every new row, else of the last one
};

// The BatchMetadata of `steps`, with slots derived from each block table.
BatchMetadata MakeBatch(const std::vector<SeqStep>& steps, int block_size);

// Random token ids below vocab_size.
std::vector<int32_t> RandomTokens(int count, int vocab_size, uint32_t seed);

// Uniform random floats in [-1, 1].
std::vector<float> RandomFloats(size_t count, uint32_t seed);

// Writes `value` rounded to `dtype` at element i of `out`.
void StoreAs(DType dtype, float value, void* out, size_t i);

}  // namespace doze::testing

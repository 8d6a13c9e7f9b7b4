#include "tests/worker/backend/tiny_model.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "worker/common/half.h"

namespace doze::testing {

ModelConfig TinyConfig() {
  ModelConfig config;
  config.hidden_size = 54;
  config.intermediate_size = 75;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 3;
  config.num_key_value_heads = 1;
  config.head_dim = 18;
  config.vocab_size = 101;
  config.max_position_embeddings = 512;
  config.rope_theta = 10000.0;
  config.rms_norm_eps = 1e-6;
  config.tie_word_embeddings = true;
  return config;
}

void StoreAs(DType dtype, float value, void* out, size_t i) {
  switch (dtype) {
    case DType::kF32:
      static_cast<float*>(out)[i] = value;
      break;
    case DType::kF16:
      static_cast<uint16_t*>(out)[i] = _cvtss_sh(value, _MM_FROUND_TO_NEAREST_INT);
      break;
    case DType::kBF16:
      static_cast<uint16_t*>(out)[i] = FloatToBf16(value);
      break;
  }
}

TinyModel::TinyModel(const ModelConfig& config, DType dtype, uint32_t seed)
    : config_(config), dtype_(dtype), rng_(seed) {
  const int64_t hidden = config.hidden_size;
  const int64_t inter = config.intermediate_size;
  weights_.embed_tokens = Random({config.vocab_size, hidden}, 0.0f, 1.0f);
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    LayerWeights layer;
    layer.input_layernorm = Random({hidden}, 1.0f, 0.1f);
    layer.q_proj = Random({config.q_size(), hidden}, 0.0f, 0.3f);
    layer.q_bias = Random({config.q_size()}, 0.0f, 0.2f);
    layer.k_proj = Random({config.kv_size(), hidden}, 0.0f, 0.3f);
    layer.k_bias = Random({config.kv_size()}, 0.0f, 0.2f);
    layer.v_proj = Random({config.kv_size(), hidden}, 0.0f, 0.3f);
    layer.v_bias = Random({config.kv_size()}, 0.0f, 0.2f);
    layer.o_proj = Random({hidden, config.q_size()}, 0.0f, 0.2f);
    layer.post_attention_layernorm = Random({hidden}, 1.0f, 0.1f);
    layer.gate_proj = Random({inter, hidden}, 0.0f, 0.3f);
    layer.up_proj = Random({inter, hidden}, 0.0f, 0.3f);
    layer.down_proj = Random({hidden, inter}, 0.0f, 0.2f);
    weights_.layers.push_back(std::move(layer));
  }
  weights_.norm = Random({hidden}, 1.0f, 0.1f);
  weights_.lm_head =
      config.tie_word_embeddings ? weights_.embed_tokens : Random({config.vocab_size, hidden}, 0.0f, 0.3f);
}

TensorView TinyModel::Random(std::vector<int64_t> shape, float center, float spread) {
  TensorView view;
  view.dtype = dtype_;
  view.shape = std::move(shape);
  auto bytes = std::make_unique<std::vector<uint8_t>>(view.nbytes());
  std::uniform_real_distribution<float> dist(center - spread, center + spread);
  for (int64_t i = 0; i < view.num_elements(); ++i) StoreAs(dtype_, dist(rng_), bytes->data(), i);
  view.data = bytes->data();
  storage_.push_back(std::move(bytes));
  return view;
}

BatchMetadata MakeBatch(const std::vector<SeqStep>& steps, int block_size) {
  BatchMetadata batch;
  size_t max_blocks = 1;
  for (const SeqStep& step : steps) max_blocks = std::max(max_blocks, step.blocks.size());
  batch.max_blocks_per_seq = static_cast<int32_t>(max_blocks);
  batch.query_start_loc.push_back(0);
  for (const SeqStep& step : steps) {
    const int first_row = batch.num_tokens();
    for (size_t i = 0; i < step.new_tokens.size(); ++i) {
      const int position = step.num_cached + static_cast<int>(i);
      batch.token_ids.push_back(step.new_tokens[i]);
      batch.positions.push_back(position);
      batch.slot_mapping.push_back(step.blocks[position / block_size] * block_size + position % block_size);
      if (step.all_logits || i + 1 == step.new_tokens.size()) batch.logits_indices.push_back(first_row + i);
    }
    batch.query_start_loc.push_back(batch.num_tokens());
    batch.seq_lens.push_back(step.num_cached + static_cast<int>(step.new_tokens.size()));
    std::vector<int32_t> table = step.blocks;
    table.resize(max_blocks, -1);
    batch.block_tables.insert(batch.block_tables.end(), table.begin(), table.end());
  }
  return batch;
}

std::vector<int32_t> RandomTokens(int count, int vocab_size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab_size - 1);
  std::vector<int32_t> tokens(count);
  for (int32_t& token : tokens) token = dist(rng);
  return tokens;
}

std::vector<float> RandomFloats(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> values(count);
  for (float& value : values) value = dist(rng);
  return values;
}

}  // namespace doze::testing

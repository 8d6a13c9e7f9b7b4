#include "worker/backend/cpu/cpu_model_runner.h"

#include "worker/backend/cpu/batch_validation.h"
#include "worker/backend/cpu/cpu_ops.h"
#include "worker/common/logging.h"
#include "worker/common/status_macros.h"

namespace doze {
namespace {

std::vector<float> Widened(const TensorView& tensor, int64_t expected_size) {
  DOZE_CHECK(tensor.num_elements() == expected_size)
      << "vector weight of " << tensor.num_elements() << " elements, expected " << expected_size;
  std::vector<float> out(expected_size);
  WidenToFloat(tensor, out.data());
  return out;
}

WeightMatrix Matrix(const TensorView& tensor, int64_t rows, int64_t cols) {
  WeightMatrix matrix = AsWeightMatrix(tensor);
  DOZE_CHECK(matrix.rows == rows && matrix.cols == cols)
      << "weight of shape [" << matrix.rows << ", " << matrix.cols << "], expected [" << rows << ", " << cols
      << "]";
  return matrix;
}

}  // namespace

CpuModelRunner::CpuModelRunner(const Checkpoint& checkpoint, const CpuRunnerOptions& options)
    : CpuModelRunner(checkpoint.config(), checkpoint.weights(), options) {}

CpuModelRunner::CpuModelRunner(const ModelConfig& config, const ModelWeights& weights,
                               const CpuRunnerOptions& options)
    : config_(config),
      embed_tokens_(weights.embed_tokens),
      lm_head_(Matrix(weights.lm_head, config.vocab_size, config.hidden_size)),
      final_norm_(Widened(weights.norm, config.hidden_size)),
      attention_shape_{config.num_attention_heads, config.num_key_value_heads, config.head_dim,
                       options.block_size},
      num_kv_blocks_(options.num_kv_blocks),
      block_size_(options.block_size),
      pool_(std::make_unique<ThreadPool>(options.num_threads)) {
  DOZE_CHECK(block_size_ > 0 && num_kv_blocks_ >= 0);
  DOZE_CHECK(config.head_dim % 2 == 0 && config.num_key_value_heads > 0 &&
             config.num_attention_heads % config.num_key_value_heads == 0);
  DOZE_CHECK(static_cast<int>(weights.layers.size()) == config.num_hidden_layers);
  Matrix(embed_tokens_, config.vocab_size, config.hidden_size);  // checks the embedding table's shape
  const int64_t hidden = config.hidden_size;
  const int64_t cache_floats = static_cast<int64_t>(num_kv_blocks_) * block_size_ * config.kv_size();
  layers_.resize(config.num_hidden_layers);
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    const LayerWeights& w = weights.layers[l];
    Layer& layer = layers_[l];
    layer.input_norm = Widened(w.input_layernorm, hidden);
    layer.q_proj = Matrix(w.q_proj, config.q_size(), hidden);
    layer.k_proj = Matrix(w.k_proj, config.kv_size(), hidden);
    layer.v_proj = Matrix(w.v_proj, config.kv_size(), hidden);
    layer.o_proj = Matrix(w.o_proj, hidden, config.q_size());
    layer.q_bias = Widened(w.q_bias, config.q_size());
    layer.k_bias = Widened(w.k_bias, config.kv_size());
    layer.v_bias = Widened(w.v_bias, config.kv_size());
    layer.post_attention_norm = Widened(w.post_attention_layernorm, hidden);
    layer.gate_proj = Matrix(w.gate_proj, config.intermediate_size, hidden);
    layer.up_proj = Matrix(w.up_proj, config.intermediate_size, hidden);
    layer.down_proj = Matrix(w.down_proj, hidden, config.intermediate_size);
    layer.k_cache.reset(new float[cache_floats]);
    layer.v_cache.reset(new float[cache_floats]);
  }
}

absl::StatusOr<LogitsView> CpuModelRunner::Forward(const BatchMetadata& batch) {
  RETURN_IF_ERROR(ValidateBatch(batch, BatchLimits{config_.vocab_size, num_kv_blocks_, block_size_}));
  PrepareStep(batch);
  GatherRows(embed_tokens_, batch.token_ids.data(), batch.num_tokens(), hidden_.data());
  for (Layer& layer : layers_) {
    AttentionBlock(layer, batch);
    MlpBlock(layer, batch.num_tokens());
  }
  ComputeLogits(batch);
  return LogitsView{logits_.data(), batch.num_logits(), config_.vocab_size};
}

void CpuModelRunner::PrepareStep(const BatchMetadata& batch) {
  const size_t n = batch.num_tokens();
  hidden_.resize(n * config_.hidden_size);
  normed_.resize(n * config_.hidden_size);
  q_.resize(n * config_.q_size());
  k_.resize(n * config_.kv_size());
  v_.resize(n * config_.kv_size());
  attn_out_.resize(n * config_.q_size());
  proj_out_.resize(n * config_.hidden_size);
  gate_.resize(n * config_.intermediate_size);
  up_.resize(n * config_.intermediate_size);
  rope_cos_.resize(n * config_.head_dim / 2);
  rope_sin_.resize(n * config_.head_dim / 2);
  RopeCosSin(batch.positions.data(), n, config_.head_dim, config_.rope_theta, rope_cos_.data(),
             rope_sin_.data());
  token_seq_.resize(n);
  for (int s = 0; s < batch.num_seqs(); ++s) {
    for (int row = batch.query_start_loc[s]; row < batch.query_start_loc[s + 1]; ++row) token_seq_[row] = s;
  }
}

void CpuModelRunner::AttentionBlock(Layer& layer, const BatchMetadata& batch) {
  const int64_t n = batch.num_tokens();
  ThreadPool* pool = pool_.get();
  RmsNorm(hidden_.data(), layer.input_norm.data(), n, config_.hidden_size, config_.rms_norm_eps,
          normed_.data());
  Matmul(normed_.data(), n, layer.q_proj, layer.q_bias.data(), q_.data(), pool);
  Matmul(normed_.data(), n, layer.k_proj, layer.k_bias.data(), k_.data(), pool);
  Matmul(normed_.data(), n, layer.v_proj, layer.v_bias.data(), v_.data(), pool);
  ApplyRope(q_.data(), n, config_.q_size(), config_.num_attention_heads, config_.head_dim, rope_cos_.data(),
            rope_sin_.data());
  ApplyRope(k_.data(), n, config_.kv_size(), config_.num_key_value_heads, config_.head_dim, rope_cos_.data(),
            rope_sin_.data());
  WriteKvCache(attention_shape_, k_.data(), v_.data(), batch.slot_mapping.data(), n, layer.k_cache.get(),
               layer.v_cache.get());
  PagedAttention(attention_shape_, q_.data(), layer.k_cache.get(), layer.v_cache.get(),
                 batch.positions.data(), token_seq_.data(), batch.block_tables.data(),
                 batch.max_blocks_per_seq, n, attn_out_.data(), pool);
  Matmul(attn_out_.data(), n, layer.o_proj, nullptr, proj_out_.data(), pool);
  AddInPlace(hidden_.data(), proj_out_.data(), n * config_.hidden_size);
}

void CpuModelRunner::MlpBlock(const Layer& layer, int64_t num_tokens) {
  ThreadPool* pool = pool_.get();
  RmsNorm(hidden_.data(), layer.post_attention_norm.data(), num_tokens, config_.hidden_size,
          config_.rms_norm_eps, normed_.data());
  Matmul(normed_.data(), num_tokens, layer.gate_proj, nullptr, gate_.data(), pool);
  Matmul(normed_.data(), num_tokens, layer.up_proj, nullptr, up_.data(), pool);
  SiluMul(gate_.data(), up_.data(), num_tokens * config_.intermediate_size, gate_.data());
  Matmul(gate_.data(), num_tokens, layer.down_proj, nullptr, proj_out_.data(), pool);
  AddInPlace(hidden_.data(), proj_out_.data(), num_tokens * config_.hidden_size);
}

void CpuModelRunner::ComputeLogits(const BatchMetadata& batch) {
  const int64_t hidden = config_.hidden_size;
  const int num_logits = batch.num_logits();
  logit_rows_.resize(static_cast<size_t>(num_logits) * hidden);
  for (int i = 0; i < num_logits; ++i) {
    const float* src = hidden_.data() + static_cast<int64_t>(batch.logits_indices[i]) * hidden;  // [hidden]
    std::copy(src, src + hidden, logit_rows_.data() + i * hidden);
  }
  RmsNorm(logit_rows_.data(), final_norm_.data(), num_logits, hidden, config_.rms_norm_eps,
          logit_rows_.data());
  logits_.resize(static_cast<size_t>(num_logits) * config_.vocab_size);
  Matmul(logit_rows_.data(), num_logits, lm_head_, nullptr, logits_.data(), pool_.get());
}

}  // namespace doze

// The CPU reference backend: the Qwen2 forward pass in fp32 over bf16/fp16/fp32 weights read in place.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/backend/cpu/matmul.h"
#include "worker/backend/cpu/paged_attention.h"
#include "worker/backend/cpu/thread_pool.h"
#include "worker/engine/model_runner.h"
#include "worker/model/checkpoint.h"
#include "worker/model/model_config.h"
#include "worker/model/model_weights.h"

namespace doze {

struct CpuRunnerOptions {
  int num_kv_blocks = 0;
  int block_size = 16;
  int num_threads = 0;  // 0: hardware concurrency
};

// Computes what Hugging Face transformers' Qwen2ForCausalLM computes in fp32. The large matrices stay where
// the checkpoint mapped them and are widened as they stream through the cores; only norm weights and biases
// (a few hundred KB) are widened once. The KV cache is fp32. Forward runs on the calling thread plus the
// runner's pool; call it from one thread at a time.
class CpuModelRunner : public ModelRunner {
 public:
  // Runs `checkpoint`, which must outlive the runner.
  CpuModelRunner(const Checkpoint& checkpoint, const CpuRunnerOptions& options);
  // Runs weights that live elsewhere (tests build small ones in memory); they must outlive the runner and
  // have the shapes of model_weights.h for `config`.
  CpuModelRunner(const ModelConfig& config, const ModelWeights& weights, const CpuRunnerOptions& options);

  const ModelConfig& config() const override { return config_; }
  int block_size() const override { return block_size_; }
  int num_kv_blocks() const override { return num_kv_blocks_; }
  // Validates `batch` (InvalidArgument when it would index out of bounds), runs every layer over its tokens
  // and returns the logits of its logits_indices rows, valid until the next call.
  absl::StatusOr<LogitsView> Forward(const BatchMetadata& batch) override;

 private:
  // One decoder layer's weights: matrices viewed in place, vectors widened to fp32.
  struct Layer {
    std::vector<float> input_norm;  // [hidden]
    WeightMatrix q_proj, k_proj, v_proj, o_proj;
    std::vector<float> q_bias;               // [q_size]
    std::vector<float> k_bias;               // [kv_size]
    std::vector<float> v_bias;               // [kv_size]
    std::vector<float> post_attention_norm;  // [hidden]
    WeightMatrix gate_proj, up_proj, down_proj;
    // Left uninitialised: a slot is always written before attention reads it, and a large pool then costs no
    // start-up time (pages arrive as they are first written).
    std::unique_ptr<float[]> k_cache;  // [num_kv_blocks, block_size, num_kv_heads, head_dim]
    std::unique_ptr<float[]> v_cache;  // [num_kv_blocks, block_size, num_kv_heads, head_dim]
  };

  // Sizes the activation buffers for `batch` and computes what every layer shares: rotary angles, token
  // owners.
  void PrepareStep(const BatchMetadata& batch);
  // x += o_proj(attention(rope(qkv(norm(x))))), writing this step's K/V into the layer's cache first.
  void AttentionBlock(Layer& layer, const BatchMetadata& batch);
  // x += down(silu(gate(norm(x))) * up(norm(x))).
  void MlpBlock(const Layer& layer, int64_t num_tokens);
  // Final norm and LM head for the rows in logits_indices only.
  void ComputeLogits(const BatchMetadata& batch);

  ModelConfig config_;
  TensorView embed_tokens_;        // [vocab, hidden]
  WeightMatrix lm_head_;           // [vocab, hidden]
  std::vector<float> final_norm_;  // [hidden]
  std::vector<Layer> layers_;
  AttentionShape attention_shape_;
  int num_kv_blocks_;
  int block_size_;
  std::unique_ptr<ThreadPool> pool_;

  // Per-step buffers, grown to the largest batch seen.
  std::vector<float> hidden_;       // [num_tokens, hidden] the residual stream
  std::vector<float> normed_;       // [num_tokens, hidden]
  std::vector<float> q_;            // [num_tokens, q_size]
  std::vector<float> k_;            // [num_tokens, kv_size]
  std::vector<float> v_;            // [num_tokens, kv_size]
  std::vector<float> attn_out_;     // [num_tokens, q_size]
  std::vector<float> proj_out_;     // [num_tokens, hidden]
  std::vector<float> gate_;         // [num_tokens, intermediate]
  std::vector<float> up_;           // [num_tokens, intermediate]
  std::vector<float> rope_cos_;     // [num_tokens, head_dim / 2]
  std::vector<float> rope_sin_;     // [num_tokens, head_dim / 2]
  std::vector<int32_t> token_seq_;  // [num_tokens] the sequence of each row
  std::vector<float> logit_rows_;   // [num_logits, hidden]
  std::vector<float> logits_;       // [num_logits, vocab]
};

}  // namespace doze

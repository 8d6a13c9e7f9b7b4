// Views of every Qwen2 weight tensor, in Hugging Face's shapes ([out_features, in_features] for linear
// layers), and their names in a checkpoint.
#pragma once

#include <string>
#include <vector>

#include "worker/model/model_config.h"
#include "worker/model/tensor.h"

namespace doze {

struct LayerWeights {
  TensorView input_layernorm;           // [hidden]
  TensorView q_proj, q_bias;            // [q_size, hidden], [q_size]
  TensorView k_proj, k_bias;            // [kv_size, hidden], [kv_size]
  TensorView v_proj, v_bias;            // [kv_size, hidden], [kv_size]
  TensorView o_proj;                    // [hidden, q_size]
  TensorView post_attention_layernorm;  // [hidden]
  TensorView gate_proj, up_proj;        // [intermediate, hidden]
  TensorView down_proj;                 // [hidden, intermediate]
};

// The config size a tensor dimension takes; kNone for a vector's absent second dimension.
enum class WeightDim { kNone, kHidden, kQ, kKv, kIntermediate };

// A layer's tensor by its name under "model.layers.N.", and its shape.
struct LayerTensor {
  const char* name;
  TensorView LayerWeights::*member;
  WeightDim rows, cols;
};

inline constexpr LayerTensor kLayerTensors[] = {
    {"input_layernorm.weight", &LayerWeights::input_layernorm, WeightDim::kHidden, WeightDim::kNone},
    {"self_attn.q_proj.weight", &LayerWeights::q_proj, WeightDim::kQ, WeightDim::kHidden},
    {"self_attn.q_proj.bias", &LayerWeights::q_bias, WeightDim::kQ, WeightDim::kNone},
    {"self_attn.k_proj.weight", &LayerWeights::k_proj, WeightDim::kKv, WeightDim::kHidden},
    {"self_attn.k_proj.bias", &LayerWeights::k_bias, WeightDim::kKv, WeightDim::kNone},
    {"self_attn.v_proj.weight", &LayerWeights::v_proj, WeightDim::kKv, WeightDim::kHidden},
    {"self_attn.v_proj.bias", &LayerWeights::v_bias, WeightDim::kKv, WeightDim::kNone},
    {"self_attn.o_proj.weight", &LayerWeights::o_proj, WeightDim::kHidden, WeightDim::kQ},
    {"post_attention_layernorm.weight", &LayerWeights::post_attention_layernorm, WeightDim::kHidden,
     WeightDim::kNone},
    {"mlp.gate_proj.weight", &LayerWeights::gate_proj, WeightDim::kIntermediate, WeightDim::kHidden},
    {"mlp.up_proj.weight", &LayerWeights::up_proj, WeightDim::kIntermediate, WeightDim::kHidden},
    {"mlp.down_proj.weight", &LayerWeights::down_proj, WeightDim::kHidden, WeightDim::kIntermediate},
};

// The shape `tensor` has in a model of `config`.
std::vector<int64_t> ShapeOf(const LayerTensor& tensor, const ModelConfig& config);

struct ModelWeights {
  TensorView embed_tokens;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  TensorView norm;     // [hidden]
  TensorView lm_head;  // [vocab, hidden]; the same view as embed_tokens when embeddings are tied

  bool tied() const { return lm_head.data == embed_tokens.data; }
};

struct NamedTensor {
  std::string name;  // as the checkpoint names it: "model.layers.3.mlp.up_proj.weight"
  const TensorView* view;
};

// Every distinct weight of `weights` with its name; lm_head only when it is not the embedding.
std::vector<NamedTensor> NamedWeights(const ModelWeights& weights);

}  // namespace doze

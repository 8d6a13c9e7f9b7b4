// Views of every Qwen2 weight tensor, in Hugging Face's shapes ([out_features, in_features] for linear
// layers).
#pragma once

#include <vector>

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

struct ModelWeights {
  TensorView embed_tokens;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  TensorView norm;     // [hidden]
  TensorView lm_head;  // [vocab, hidden]; the same view as embed_tokens when embeddings are tied
};

}  // namespace doze

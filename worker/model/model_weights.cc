#include "worker/model/model_weights.h"

#include "absl/strings/str_cat.h"

namespace doze {

std::vector<NamedTensor> NamedWeights(const ModelWeights& weights) {
  std::vector<NamedTensor> out;
  out.push_back({"model.embed_tokens.weight", &weights.embed_tokens});
  for (size_t l = 0; l < weights.layers.size(); ++l) {
    for (const LayerTensor& tensor : kLayerTensors) {
      out.push_back(
          {absl::StrCat("model.layers.", l, ".", tensor.name), &(weights.layers[l].*tensor.member)});
    }
  }
  out.push_back({"model.norm.weight", &weights.norm});
  if (!weights.tied()) out.push_back({"lm_head.weight", &weights.lm_head});
  return out;
}

}  // namespace doze

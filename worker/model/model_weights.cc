#include "worker/model/model_weights.h"

#include "absl/strings/str_cat.h"

namespace doze {
namespace {

// The size `dim` stands for in `c`.
int64_t DimSize(const ModelConfig& c, WeightDim dim) {
  switch (dim) {
    case WeightDim::kHidden:
      return c.hidden_size;
    case WeightDim::kQ:
      return c.q_size();
    case WeightDim::kKv:
      return c.kv_size();
    case WeightDim::kIntermediate:
      return c.intermediate_size;
    case WeightDim::kNone:
      break;
  }
  return 0;
}

}  // namespace

std::vector<int64_t> ShapeOf(const LayerTensor& tensor, const ModelConfig& config) {
  std::vector<int64_t> shape = {DimSize(config, tensor.rows)};
  if (tensor.cols != WeightDim::kNone) shape.push_back(DimSize(config, tensor.cols));
  return shape;
}

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

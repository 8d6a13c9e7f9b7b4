#include "worker/model/checkpoint.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "worker/common/file_util.h"
#include "worker/common/json_util.h"
#include "worker/common/logging.h"
#include "worker/common/status_macros.h"
#include "worker/model/qwen_tokenizer_config.h"
#include "worker/model/safetensors_file.h"

namespace doze {
namespace {

using Json = nlohmann::json;

constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

// Every tensor of the checkpoint's files by name, and what to call the files in errors.
struct TensorLookup {
  absl::flat_hash_map<std::string, const SafetensorsTensor*> tensors;
  std::string source;
};

// Adds all tensors of `file` to `lookup`; a name held by two shards is an error.
absl::Status AddFile(const SafetensorsFile& file, TensorLookup* lookup) {
  for (const SafetensorsTensor& tensor : file.tensors()) {
    if (!lookup->tensors.emplace(tensor.name, &tensor).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.path(), ": tensor ", tensor.name, " is also in another shard"));
    }
  }
  return absl::OkStatus();
}

// Opens the shards of model.safetensors.index.json (its `text`) and checks its weight_map against their
// contents.
absl::Status OpenShards(const std::string& dir, const std::string& text,
                        std::vector<std::unique_ptr<SafetensorsFile>>* files, TensorLookup* lookup) {
  std::string index_path = absl::StrCat(dir, "/", kIndexFile);
  absl::StatusOr<Json> parsed = ParseJsonObject(text);
  if (!parsed.ok())
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": ", parsed.status().message()));
  const Json& index = *parsed;
  if (!index.contains("weight_map") || !index["weight_map"].is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": no \"weight_map\" object"));
  }
  absl::flat_hash_map<std::string, const SafetensorsFile*> shards;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    if (!shard.is_string() || shard.get_ref<const std::string&>().find('/') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(index_path, ": weight_map.", name, ": not a file name"));
    }
    const std::string& shard_name = shard.get_ref<const std::string&>();
    if (!shards.contains(shard_name)) {
      ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(absl::StrCat(dir, "/", shard_name)));
      RETURN_IF_ERROR(AddFile(*file, lookup));
      shards[shard_name] = file.get();
      files->push_back(std::move(file));
    }
    if (shards[shard_name]->Find(name) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(index_path, ": weight_map puts ", name, " in ",
                                                     shard_name, ", which does not hold it"));
    }
  }
  lookup->source = index_path;
  return absl::OkStatus();
}

// Opens model.safetensors, or without it the shards of the index, as transformers looks for them.
absl::Status OpenWeightFiles(const std::string& dir, std::vector<std::unique_ptr<SafetensorsFile>>* files,
                             TensorLookup* lookup) {
  std::string path = absl::StrCat(dir, "/", kSingleFile);
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  if (file.ok()) {
    RETURN_IF_ERROR(AddFile(**file, lookup));
    lookup->source = path;
    files->push_back(*std::move(file));
    return absl::OkStatus();
  }
  if (!absl::IsNotFound(file.status())) return file.status();
  absl::StatusOr<std::string> index = ReadFileToString(absl::StrCat(dir, "/", kIndexFile));
  if (absl::IsNotFound(index.status())) {
    return absl::NotFoundError(absl::StrCat(path, ": not found (nor ", kIndexFile, ")"));
  }
  RETURN_IF_ERROR(index.status());
  return OpenShards(dir, *index, files, lookup);
}

// Looks up weights by name, checking each against the shape config.json implies.
class WeightBinder {
 public:
  explicit WeightBinder(const TensorLookup& lookup) : lookup_(lookup) {}

  // Binds `name` to `out` when present with `shape`.
  absl::Status Bind(const std::string& name, std::vector<int64_t> shape, TensorView* out) const {
    auto it = lookup_.tensors.find(name);
    if (it == lookup_.tensors.end()) {
      return absl::NotFoundError(absl::StrCat(lookup_.source, ": missing tensor ", name));
    }
    const TensorView& view = it->second->view;
    if (view.shape != shape) {
      return absl::InvalidArgumentError(
          absl::StrCat(lookup_.source, ": tensor ", name, " has shape [", absl::StrJoin(view.shape, ", "),
                       "] but config.json implies [", absl::StrJoin(shape, ", "), "]"));
    }
    *out = view;
    return absl::OkStatus();
  }

  // Whether the files hold `name` at all.
  bool Has(const std::string& name) const { return lookup_.tensors.contains(name); }

 private:
  const TensorLookup& lookup_;
};

// Binds the twelve tensors of decoder layer `i`.
absl::Status BindLayer(const WeightBinder& binder, const ModelConfig& c, int i, LayerWeights* layer) {
  const std::string prefix = absl::StrCat("model.layers.", i, ".");
  for (const LayerTensor& tensor : kLayerTensors) {
    RETURN_IF_ERROR(binder.Bind(prefix + tensor.name, ShapeOf(tensor, c), &(layer->*tensor.member)));
  }
  return absl::OkStatus();
}

// Binds every weight of the model; tied checkpoints reuse the embedding as the output projection.
absl::Status BindWeights(const TensorLookup& lookup, const ModelConfig& c, ModelWeights* weights) {
  WeightBinder binder(lookup);
  const int64_t vocab = c.vocab_size, hidden = c.hidden_size;
  RETURN_IF_ERROR(binder.Bind("model.embed_tokens.weight", {vocab, hidden}, &weights->embed_tokens));
  // One layer at a time: num_hidden_layers is not trusted to size anything before its tensors are found.
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    LayerWeights layer;
    RETURN_IF_ERROR(BindLayer(binder, c, i, &layer));
    weights->layers.push_back(layer);
  }
  // Layers past num_hidden_layers would be left out of the model without a word.
  if (const std::string next = absl::StrCat("model.layers.", c.num_hidden_layers, ".input_layernorm.weight");
      binder.Has(next)) {
    return absl::InvalidArgumentError(absl::StrCat(lookup.source, ": holds ", next, " but config.json has ",
                                                   c.num_hidden_layers, " num_hidden_layers"));
  }
  RETURN_IF_ERROR(binder.Bind("model.norm.weight", {hidden}, &weights->norm));
  if (c.tie_word_embeddings) {
    weights->lm_head = weights->embed_tokens;
    return absl::OkStatus();
  }
  if (!binder.Has("lm_head.weight")) {
    return absl::NotFoundError(absl::StrCat(
        lookup.source, ": missing tensor lm_head.weight (config.json has tie_word_embeddings false)"));
  }
  return binder.Bind("lm_head.weight", {vocab, hidden}, &weights->lm_head);
}

// tokenizer_config.json, when present, must be a JSON object. doze renders chats with Qwen2.5-Instruct's
// template: a checkpoint whose chat_template differs is served with that one all the same, and the log says
// so.
absl::Status CheckTokenizerConfig(const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/tokenizer_config.json");
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (absl::IsNotFound(text.status())) return absl::OkStatus();
  RETURN_IF_ERROR(text.status());
  absl::StatusOr<Json> config = ParseJsonObject(*text);
  if (!config.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", config.status().message()));
  auto chat_template = config->find("chat_template");
  if (chat_template != config->end() &&
      !(chat_template->is_string() && chat_template->get_ref<const std::string&>() == Qwen25ChatTemplate())) {
    DOZE_LOG(WARNING) << path
                      << ": chat_template is not Qwen2.5-Instruct's; chats are rendered with that one "
                      << "(ChatML, its default system prompt) all the same";
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Load(const std::string& dir) {
  std::unique_ptr<Checkpoint> checkpoint(new Checkpoint());
  checkpoint->dir_ = dir;
  std::string config_path = absl::StrCat(dir, "/config.json");
  ASSIGN_OR_RETURN(std::string config_text, ReadFileToString(config_path));
  ASSIGN_OR_RETURN(checkpoint->config_, ParseModelConfig(config_text, config_path));
  std::string generation_path = absl::StrCat(dir, "/generation_config.json");
  absl::StatusOr<std::string> generation_text = ReadFileToString(generation_path);
  if (generation_text.ok()) {
    ASSIGN_OR_RETURN(checkpoint->generation_config_,
                     ParseGenerationConfig(*generation_text, generation_path));
  } else if (absl::IsNotFound(generation_text.status())) {
    // As transformers does, fall back to config.json's special tokens.
    checkpoint->generation_config_.eos_token_ids = checkpoint->config_.eos_token_ids;
    checkpoint->generation_config_.bos_token_id = checkpoint->config_.bos_token_id;
  } else {
    return generation_text.status();
  }
  RETURN_IF_ERROR(CheckSpecialTokens(checkpoint->generation_config_, checkpoint->config_.vocab_size,
                                     generation_text.ok() ? generation_path : config_path));
  RETURN_IF_ERROR(CheckTokenizerConfig(dir));
  TensorLookup lookup;
  RETURN_IF_ERROR(OpenWeightFiles(dir, &checkpoint->files_, &lookup));
  RETURN_IF_ERROR(BindWeights(lookup, checkpoint->config_, &checkpoint->weights_));
  return checkpoint;
}

Checkpoint::~Checkpoint() = default;

size_t Checkpoint::weight_bytes() const {
  size_t total = 0;
  for (const NamedTensor& tensor : NamedWeights(weights_)) total += tensor.view->nbytes();
  return total;
}

}  // namespace doze

#include "worker/model/model_config.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "worker/common/json_util.h"
#include "worker/common/status_macros.h"

namespace doze {
namespace {

using Json = nlohmann::json;

// Reads config files' JSON fields with errors of the form "<source>: <key>: <problem>".
class FieldReader {
 public:
  FieldReader(const Json& json, std::string_view source)
      : json_(json), source_(source.data(), source.size()) {}

  // Reads an integer key into `out`; absent keys are an error only when `required`.
  absl::Status Int(const char* key, int* out, bool required, int min_value) const {
    const Json* value = Find(key);
    if (value == nullptr) return required ? Error(key, "missing required key") : absl::OkStatus();
    if (!value->is_number_integer() || value->get<int64_t>() < min_value ||
        value->get<int64_t>() > int64_t{1} << 30) {
      return Error(key, absl::StrCat("must be an integer >= ", min_value, ", got ", DescribeJson(*value)));
    }
    *out = value->get<int>();
    return absl::OkStatus();
  }

  // Reads an optional number key into `out`.
  absl::Status Double(const char* key, double* out) const {
    const Json* value = Find(key);
    if (value == nullptr) return absl::OkStatus();
    if (!value->is_number()) return Error(key, absl::StrCat("must be a number, got ", DescribeJson(*value)));
    *out = value->get<double>();
    return absl::OkStatus();
  }

  // Reads an optional boolean key into `out`.
  absl::Status Bool(const char* key, bool* out) const {
    const Json* value = Find(key);
    if (value == nullptr) return absl::OkStatus();
    if (!value->is_boolean())
      return Error(key, absl::StrCat("must be true or false, got ", DescribeJson(*value)));
    *out = value->get<bool>();
    return absl::OkStatus();
  }

  // Reads an optional token id key, an int or a list of ints (as eos_token_id may be), into `out`.
  absl::Status IdList(const char* key, std::vector<int>* out) const {
    const Json* value = Find(key);
    if (value == nullptr) return absl::OkStatus();
    std::vector<int> ids;
    for (const Json& item : value->is_array() ? *value : Json::array({*value})) {
      if (!item.is_number_integer() || item.get<int64_t>() < 0 || item.get<int64_t>() > int64_t{1} << 30) {
        return Error(key,
                     absl::StrCat("must be a token id or a list of token ids, got ", DescribeJson(*value)));
      }
      ids.push_back(item.get<int>());
    }
    *out = std::move(ids);
    return absl::OkStatus();
  }

  // Returns the key's value, or nullptr when it is absent or null (HF writes null for "not set").
  const Json* Find(const char* key) const {
    auto it = json_.find(key);
    return it == json_.end() || it->is_null() ? nullptr : &*it;
  }

  // An InvalidArgument error naming the source and the key.
  absl::Status Error(absl::string_view key, absl::string_view problem) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": ", key, ": ", problem));
  }

 private:
  const Json& json_;
  absl::string_view source_;
};

// Parses `text` as a JSON object; errors name `source`.
absl::StatusOr<Json> ParseObject(std::string_view text, std::string_view source) {
  absl::StatusOr<Json> json = ParseJsonObject(text);
  if (!json.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(absl::string_view(source.data(), source.size()), ": ", json.status().message()));
  }
  return json;
}

// Checks "architectures", "model_type" and "hidden_act" (when present) describe Qwen2 and reads
// "torch_dtype".
absl::Status ParseArchitectureAndDType(const FieldReader& reader, ModelConfig* config) {
  if (const Json* arch = reader.Find("architectures")) {
    bool qwen2 = arch->is_array() && std::find(arch->begin(), arch->end(), "Qwen2ForCausalLM") != arch->end();
    if (!qwen2)
      return reader.Error("architectures",
                          absl::StrCat("expected [\"Qwen2ForCausalLM\"], got ", DescribeJson(*arch)));
  }
  for (const auto& [key, want] : {std::pair{"model_type", "qwen2"}, std::pair{"hidden_act", "silu"}}) {
    const Json* value = reader.Find(key);
    if (value != nullptr && *value != want) {
      return reader.Error(key, absl::StrCat("expected \"", want, "\", got ", DescribeJson(*value)));
    }
  }
  if (const Json* dtype = reader.Find("torch_dtype")) {
    if (*dtype == "bfloat16") {
      config->torch_dtype = DType::kBF16;
    } else if (*dtype == "float16") {
      config->torch_dtype = DType::kF16;
    } else if (*dtype == "float32") {
      config->torch_dtype = DType::kF32;
    } else {
      return reader.Error("torch_dtype",
                          absl::StrCat("expected bfloat16, float16 or float32, got ", DescribeJson(*dtype)));
    }
  }
  return absl::OkStatus();
}

// Fills head_dim and num_key_value_heads defaults as transformers' Qwen2Config does, then checks the heads
// divide.
absl::Status DeriveAndCheckHeads(const FieldReader& reader, ModelConfig* config) {
  if (config->num_key_value_heads == 0) config->num_key_value_heads = config->num_attention_heads;
  if (config->head_dim == 0) {
    if (config->hidden_size % config->num_attention_heads != 0) {
      return reader.Error("hidden_size",
                          absl::StrCat(config->hidden_size, " is not divisible by num_attention_heads ",
                                       config->num_attention_heads, " (and head_dim is absent)"));
    }
    config->head_dim = config->hidden_size / config->num_attention_heads;
  }
  if (config->num_attention_heads % config->num_key_value_heads != 0) {
    return reader.Error("num_key_value_heads",
                        absl::StrCat(config->num_key_value_heads, " does not divide num_attention_heads ",
                                     config->num_attention_heads));
  }
  // Rotary embeddings turn pairs of a head's dimensions.
  if (config->head_dim % 2 != 0) {
    return reader.Error("head_dim", absl::StrCat(config->head_dim, " is odd (rotary embeddings need pairs)"));
  }
  // The projections' widths (heads x head_dim) are ints everywhere: bounded well inside one.
  constexpr int64_t kMaxWidth = int64_t{1} << 20;
  if (int64_t{config->num_attention_heads} * config->head_dim > kMaxWidth) {
    return reader.Error("num_attention_heads",
                        absl::StrCat(config->num_attention_heads, " heads of ", config->head_dim,
                                     " dimensions exceed ", kMaxWidth, " in all"));
  }
  return absl::OkStatus();
}

// What the attention computes is Qwen2's default: rotary embeddings without scaling, every layer attending to
// the whole context. A config that asks otherwise (rope_scaling, a sliding window shorter than the context)
// would run with other results than transformers', so it is refused rather than ignored.
absl::Status RefuseOtherAttention(const FieldReader& reader, const ModelConfig& config) {
  if (const Json* scaling = reader.Find("rope_scaling"); scaling != nullptr && !scaling->is_null()) {
    const Json* type = nullptr;
    if (scaling->is_object()) {
      // transformers reads "rope_type" and falls back to the older "type".
      for (const char* key : {"type", "rope_type"}) {
        if (scaling->contains(key)) type = &(*scaling)[key];
      }
    }
    if (type == nullptr || *type != "default")
      return reader.Error("rope_scaling", absl::StrCat("only the default rotary embedding is supported, got ",
                                                       DescribeJson(*scaling)));
  }
  bool sliding = false;
  RETURN_IF_ERROR(reader.Bool("use_sliding_window", &sliding));
  int window = config.max_position_embeddings;
  RETURN_IF_ERROR(reader.Int("sliding_window", &window, false, 1));
  if (sliding && window < config.max_position_embeddings) {
    return reader.Error(
        "use_sliding_window",
        absl::StrCat("a sliding window of ", window, " tokens, shorter than the context, is not supported"));
  }
  return absl::OkStatus();
}

// Values that pass the sign checks and still give NaN: rotary angles past fp32's range (a rope_theta far
// below 1 makes the highest frequency huge), and an rms_norm_eps that rounds to 0 in fp32 (an all-zero row
// divides 0 by 0).
absl::Status CheckFloatRanges(const FieldReader& reader, const ModelConfig& config) {
  const double highest_frequency =
      std::max(1.0, std::pow(config.rope_theta, -static_cast<double>(config.head_dim - 2) / config.head_dim));
  const double largest_angle = highest_frequency * std::max(1, config.max_position_embeddings - 1);
  if (!(largest_angle < std::numeric_limits<float>::max())) {
    return reader.Error(
        "rope_theta",
        absl::StrCat(config.rope_theta, " makes the rotary angles overflow fp32 (", highest_frequency,
                     " radians a position at head_dim ", config.head_dim, ")"));
  }
  if (static_cast<float>(config.rms_norm_eps) == 0.0f)
    return reader.Error("rms_norm_eps", absl::StrCat(config.rms_norm_eps, " rounds to 0 in fp32"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text, std::string_view source) {
  ASSIGN_OR_RETURN(Json json, ParseObject(json_text, source));
  FieldReader reader(json, source);
  ModelConfig config;
  config.max_position_embeddings = 32768;  // Qwen2Config's default
  RETURN_IF_ERROR(ParseArchitectureAndDType(reader, &config));
  RETURN_IF_ERROR(reader.Int("hidden_size", &config.hidden_size, true, 1));
  RETURN_IF_ERROR(reader.Int("intermediate_size", &config.intermediate_size, true, 1));
  RETURN_IF_ERROR(reader.Int("num_hidden_layers", &config.num_hidden_layers, true, 1));
  RETURN_IF_ERROR(reader.Int("num_attention_heads", &config.num_attention_heads, true, 1));
  RETURN_IF_ERROR(reader.Int("num_key_value_heads", &config.num_key_value_heads, false, 1));
  RETURN_IF_ERROR(reader.Int("head_dim", &config.head_dim, false, 1));
  RETURN_IF_ERROR(reader.Int("vocab_size", &config.vocab_size, true, 1));
  RETURN_IF_ERROR(reader.Int("max_position_embeddings", &config.max_position_embeddings, false, 1));
  RETURN_IF_ERROR(reader.Double("rope_theta", &config.rope_theta));
  RETURN_IF_ERROR(reader.Double("rms_norm_eps", &config.rms_norm_eps));
  RETURN_IF_ERROR(reader.Bool("tie_word_embeddings", &config.tie_word_embeddings));
  RETURN_IF_ERROR(reader.Int("bos_token_id", &config.bos_token_id, false, 0));
  RETURN_IF_ERROR(reader.IdList("eos_token_id", &config.eos_token_ids));
  if (config.rope_theta <= 0) return reader.Error("rope_theta", "must be positive");
  if (config.rms_norm_eps <= 0) return reader.Error("rms_norm_eps", "must be positive");
  RETURN_IF_ERROR(DeriveAndCheckHeads(reader, &config));
  RETURN_IF_ERROR(RefuseOtherAttention(reader, config));
  RETURN_IF_ERROR(CheckFloatRanges(reader, config));
  return config;
}

absl::Status CheckSpecialTokens(const GenerationConfig& generation, int vocab_size, std::string_view source) {
  for (int id : generation.eos_token_ids) {
    if (id >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(std::string(source), ": eos_token_id: ", id,
                                                     " is outside the vocabulary (vocab_size ", vocab_size,
                                                     ")"));
    }
  }
  if (generation.bos_token_id >= vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(source), ": bos_token_id: ", generation.bos_token_id,
                     " is outside the vocabulary (vocab_size ", vocab_size, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<GenerationConfig> ParseGenerationConfig(std::string_view json_text, std::string_view source) {
  ASSIGN_OR_RETURN(Json json, ParseObject(json_text, source));
  FieldReader reader(json, source);
  GenerationConfig config;
  RETURN_IF_ERROR(reader.IdList("eos_token_id", &config.eos_token_ids));
  RETURN_IF_ERROR(reader.Int("bos_token_id", &config.bos_token_id, false, 0));
  RETURN_IF_ERROR(reader.Int("pad_token_id", &config.pad_token_id, false, 0));
  RETURN_IF_ERROR(reader.Double("temperature", &config.temperature));
  RETURN_IF_ERROR(reader.Double("top_p", &config.top_p));
  RETURN_IF_ERROR(reader.Int("top_k", &config.top_k, false, 0));
  RETURN_IF_ERROR(reader.Double("repetition_penalty", &config.repetition_penalty));
  RETURN_IF_ERROR(reader.Bool("do_sample", &config.do_sample));
  if (config.temperature < 0) return reader.Error("temperature", "must not be negative");
  if (config.top_p <= 0 || config.top_p > 1) return reader.Error("top_p", "must be in (0, 1]");
  if (config.repetition_penalty <= 0) return reader.Error("repetition_penalty", "must be positive");
  return config;
}

}  // namespace doze

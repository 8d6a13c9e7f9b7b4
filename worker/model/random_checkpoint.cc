#include "worker/model/random_checkpoint.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "worker/common/file_util.h"
#include "worker/common/half.h"
#include "worker/common/status_macros.h"
#include "worker/model/model_weights.h"
#include "worker/model/qwen_tokenizer_config.h"

namespace doze {
namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;   // splitmix64's increment
constexpr float kStep = 0x1p-26f;                     // v = s * kStep is exact: |s| < 2^24
constexpr int64_t kLinearRange = 2324719;             // round(0.02 * sqrt(3) * 2^26): std 0.02
constexpr int64_t kBiasRange = 5811798;               // round(0.05 * sqrt(3) * 2^26): std 0.05
constexpr int64_t kNormRange = 6710886;               // round(0.1 * 2^26): 1 +- 0.1
constexpr int64_t kChunkElements = int64_t{1} << 20;  // 2 MB of bf16 per write

// Qwen2.5-Instruct's special token ids.
constexpr int kEndOfText = 151643;
constexpr int kImEnd = 151645;

bool IsNorm(absl::string_view name) {
  return absl::EndsWith(name, "layernorm.weight") || name == "model.norm.weight";
}

// Preset shapes; head_dim is hidden / heads in both.
absl::StatusOr<ModelConfig> PresetConfig(const std::string& preset) {
  ModelConfig c;
  if (preset == "qwen2.5-0.5b") {
    c.hidden_size = 896, c.intermediate_size = 4864, c.num_hidden_layers = 24;
    c.num_attention_heads = 14, c.num_key_value_heads = 2;
  } else if (preset == "tiny") {
    c.hidden_size = 128, c.intermediate_size = 384, c.num_hidden_layers = 2;
    c.num_attention_heads = 2, c.num_key_value_heads = 1;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown preset '", preset, "' (known: tiny, qwen2.5-0.5b)"));
  }
  c.vocab_size = 151936;
  c.max_position_embeddings = 32768;
  c.rope_theta = 1000000.0;
  c.rms_norm_eps = 1e-6;
  c.torch_dtype = DType::kBF16;
  c.bos_token_id = kEndOfText;
  c.eos_token_ids = {kImEnd};
  return c;
}

// config.json as transformers writes it for Qwen2.5-0.5B-Instruct (sorted keys, two-space indent).
std::string ConfigJson(const ModelConfig& c) {
  nlohmann::json j = {
      {"architectures", {"Qwen2ForCausalLM"}},
      {"attention_dropout", 0.0},
      {"bos_token_id", c.bos_token_id},
      {"eos_token_id", c.eos_token_ids[0]},
      {"hidden_act", "silu"},
      {"hidden_size", c.hidden_size},
      {"initializer_range", 0.02},
      {"intermediate_size", c.intermediate_size},
      {"max_position_embeddings", c.max_position_embeddings},
      // 21 of 24 layers in Qwen2.5-0.5B; only read when use_sliding_window is true, which it never is.
      {"max_window_layers", c.num_hidden_layers - c.num_hidden_layers / 8},
      {"model_type", "qwen2"},
      {"num_attention_heads", c.num_attention_heads},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_key_value_heads", c.num_key_value_heads},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_theta", c.rope_theta},
      {"sliding_window", c.max_position_embeddings},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"torch_dtype", "bfloat16"},
      {"transformers_version", "4.43.1"},
      {"use_cache", true},
      {"use_sliding_window", false},
      {"vocab_size", c.vocab_size}};
  if (c.head_dim * c.num_attention_heads != c.hidden_size) j["head_dim"] = c.head_dim;
  return j.dump(2) + "\n";
}

// Qwen2.5-Instruct's generation_config.json.
std::string GenerationConfigJson() {
  nlohmann::json j = {{"bos_token_id", kEndOfText},
                      {"do_sample", true},
                      {"eos_token_id", {kImEnd, kEndOfText}},
                      {"pad_token_id", kEndOfText},
                      {"repetition_penalty", 1.1},
                      {"temperature", 0.7},
                      {"top_k", 20},
                      {"top_p", 0.8},
                      {"transformers_version", "4.37.0"}};
  return j.dump(2) + "\n";
}

// Streams every tensor's random values into `path`.
absl::Status WriteWeights(const std::string& path, const std::vector<TensorSpec>& specs, uint64_t seed) {
  ASSIGN_OR_RETURN(auto writer, SafetensorsWriter::Create(path, specs, {{"format", "pt"}}));
  std::vector<uint16_t> chunk(kChunkElements);
  for (const TensorSpec& spec : specs) {
    for (int64_t first = 0; first < spec.num_elements(); first += kChunkElements) {
      int64_t count = std::min(kChunkElements, spec.num_elements() - first);
      RandomTensorValues(seed, spec.name, first, count, chunk.data());
      RETURN_IF_ERROR(writer->Append(chunk.data(), static_cast<size_t>(count) * sizeof(uint16_t)));
    }
  }
  return writer->Finish();
}

// Copies the tokenizer in and writes the matching tokenizer_config.json.
absl::Status WriteTokenizerFiles(const std::string& tokenizer_path, const std::string& out_dir) {
  ASSIGN_OR_RETURN(std::string tokenizer_json, ReadFileToString(tokenizer_path));
  ASSIGN_OR_RETURN(std::string tokenizer_config, Qwen25TokenizerConfigJson(tokenizer_json, tokenizer_path));
  RETURN_IF_ERROR(WriteStringToFile(out_dir + "/tokenizer.json", tokenizer_json));
  return WriteStringToFile(out_dir + "/tokenizer_config.json", tokenizer_config);
}

}  // namespace

std::vector<std::string> RandomCheckpointPresets() { return {"tiny", "qwen2.5-0.5b"}; }

absl::StatusOr<ModelConfig> RandomCheckpointConfig(const RandomCheckpointOptions& options) {
  ASSIGN_OR_RETURN(ModelConfig c, PresetConfig(options.preset));
  c.hidden_size = options.hidden_size.value_or(c.hidden_size);
  c.num_hidden_layers = options.num_layers.value_or(c.num_hidden_layers);
  c.num_attention_heads = options.num_heads.value_or(c.num_attention_heads);
  c.num_key_value_heads = options.num_kv_heads.value_or(c.num_key_value_heads);
  c.intermediate_size = options.intermediate_size.value_or(c.intermediate_size);
  c.vocab_size = options.vocab_size.value_or(c.vocab_size);
  c.tie_word_embeddings = options.tie_word_embeddings;
  for (int v : {c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads,
                c.intermediate_size, c.vocab_size, options.head_dim.value_or(1)}) {
    if (v <= 0) return absl::InvalidArgumentError("make-model: every size must be positive");
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return absl::InvalidArgumentError("make-model: num_kv_heads must divide num_heads");
  }
  if (!options.head_dim && c.hidden_size % c.num_attention_heads != 0) {
    return absl::InvalidArgumentError(
        "make-model: hidden_size must be a multiple of num_heads, or give head_dim");
  }
  c.head_dim = options.head_dim.value_or(c.hidden_size / c.num_attention_heads);
  // Nothing the loader would refuse is written.
  RETURN_IF_ERROR(ParseModelConfig(ConfigJson(c), "make-model").status());
  ASSIGN_OR_RETURN(GenerationConfig generation, ParseGenerationConfig(GenerationConfigJson(), "make-model"));
  RETURN_IF_ERROR(CheckSpecialTokens(generation, c.vocab_size, "make-model"));
  return c;
}

absl::Status WriteRandomCheckpoint(const RandomCheckpointOptions& options) {
  ASSIGN_OR_RETURN(ModelConfig config, RandomCheckpointConfig(options));
  if (options.out_dir.empty()) return absl::InvalidArgumentError("make-model: an output directory is needed");
  std::error_code error;
  std::filesystem::create_directories(options.out_dir, error);
  if (error)
    return absl::InvalidArgumentError(absl::StrCat(options.out_dir, ": cannot create: ", error.message()));
  // A stale index from an earlier sharded checkpoint would win over the new single file at load.
  std::filesystem::remove(options.out_dir + "/model.safetensors.index.json", error);
  // Config files last: a directory with config.json is then complete, for anyone polling for it.
  RETURN_IF_ERROR(WriteWeights(options.out_dir + "/model.safetensors", Qwen2TensorSpecs(config, DType::kBF16),
                               options.seed));
  if (!options.tokenizer_path.empty())
    RETURN_IF_ERROR(WriteTokenizerFiles(options.tokenizer_path, options.out_dir));
  RETURN_IF_ERROR(WriteStringToFile(options.out_dir + "/generation_config.json", GenerationConfigJson()));
  return WriteStringToFile(options.out_dir + "/config.json", ConfigJson(config));
}

std::vector<TensorSpec> Qwen2TensorSpecs(const ModelConfig& c, DType dtype) {
  const int64_t hidden = c.hidden_size;
  std::vector<TensorSpec> specs = {{"model.embed_tokens.weight", dtype, {c.vocab_size, hidden}}};
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string prefix = absl::StrCat("model.layers.", i, ".");
    for (const LayerTensor& tensor : kLayerTensors)
      specs.push_back({prefix + tensor.name, dtype, ShapeOf(tensor, c)});
  }
  specs.push_back({"model.norm.weight", dtype, {hidden}});
  if (!c.tie_word_embeddings) specs.push_back({"lm_head.weight", dtype, {c.vocab_size, hidden}});
  return specs;
}

uint64_t Mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t Fnv1a64(std::string_view text) {
  uint64_t hash = 0xCBF29CE484222325ull;
  for (char c : text) hash = (hash ^ static_cast<uint8_t>(c)) * 0x100000001B3ull;
  return hash;
}

void RandomTensorValues(uint64_t seed, std::string_view name, int64_t first, int64_t count, uint16_t* out) {
  const absl::string_view absl_name(name.data(), name.size());
  const bool norm = IsNorm(absl_name);
  const int64_t range = norm ? kNormRange : absl::EndsWith(absl_name, ".bias") ? kBiasRange : kLinearRange;
  const uint64_t span = 2 * static_cast<uint64_t>(range) + 1;
  const uint64_t key = Fnv1a64(name) ^ Mix64(seed);
  for (int64_t i = 0; i < count; ++i) {
    uint64_t z = Mix64(key + static_cast<uint64_t>(first + i + 1) * kGolden);
    int64_t s = static_cast<int64_t>(((z >> 32) * span) >> 32) - range;
    float v = static_cast<float>(s) * kStep;  // exact, so fused or not the one rounding is the add's
    out[i] = FloatToBf16(norm ? 1.0f + v : v);
  }
}

}  // namespace doze

#include "worker/model/random_checkpoint.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/worker/model/test_dir.h"
#include "worker/model/checkpoint.h"
#include "worker/model/qwen_tokenizer_config.h"
#include "worker/model/safetensors_file.h"

namespace doze {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

// An independent rewrite of the RNG spelled out in random_checkpoint.h, to pin the format.
uint16_t ReferenceValue(uint64_t seed, const std::string& name, uint64_t i) {
  auto mix = [](uint64_t x) {
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
  };
  uint64_t key = 0xCBF29CE484222325ull;
  for (unsigned char c : name) key = (key ^ c) * 0x100000001B3ull;
  key ^= mix(seed);
  bool norm = name.ends_with("layernorm.weight") || name == "model.norm.weight";
  int64_t m = norm ? 6710886 : name.ends_with(".bias") ? 5811798 : 2324719;
  uint64_t z = mix(key + (i + 1) * 0x9E3779B97F4A7C15ull);
  int64_t s = static_cast<int64_t>(((z >> 32) * static_cast<uint64_t>(2 * m + 1)) >> 32) - m;
  float v = std::ldexp(static_cast<float>(s), -26);
  if (norm) v += 1.0f;
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  return static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

// The bf16 bits of element `i` of `view`.
uint16_t Bits(const TensorView& view, int64_t i) {
  uint16_t bits;
  std::memcpy(&bits, static_cast<const char*>(view.data) + 2 * i, 2);
  return bits;
}

std::string Read(const std::string& path) {
  auto text = ReadFileToString(path);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? *text : "";
}

TEST(RandomCheckpointTest, TinySeedOneIsPinned) {
  ScratchDir dir;
  ASSERT_TRUE(WriteRandomCheckpoint({.preset = "tiny", .seed = 1, .out_dir = dir.path()}).ok());
  auto checkpoint = Checkpoint::Load(dir.path());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  const ModelWeights& w = (*checkpoint)->weights();
  // Worked out from the definition in random_checkpoint.h, outside this code base.
  EXPECT_EQ(Bits(w.embed_tokens, 0), 0x3B3F);  // 0.0029144287109375
  EXPECT_EQ(Bits(w.embed_tokens, 1), 0xBC70);  // -0.0146484375
  EXPECT_EQ(Bits(w.embed_tokens, 151936 * 128 - 1), 0xBB2F);
  EXPECT_EQ(Bits(w.layers[0].input_layernorm, 0), 0x3F8A);  // 1.078125
  EXPECT_EQ(Bits(w.layers[1].q_bias, 5), 0x3D1B);           // 0.037841796875
  EXPECT_EQ(Bits(w.layers[1].down_proj, 100), 0xBCEA);      // -0.028564453125
  EXPECT_EQ(Bits(w.norm, 127), 0x3F6D);                     // 0.92578125
  for (int64_t i : {0, 17, 383, 4095}) {
    EXPECT_EQ(Bits(w.layers[0].gate_proj, i), ReferenceValue(1, "model.layers.0.mlp.gate_proj.weight", i))
        << i;
    EXPECT_EQ(Bits(w.layers[1].k_bias, i % 64),
              ReferenceValue(1, "model.layers.1.self_attn.k_proj.bias", i % 64));
    EXPECT_EQ(Bits(w.layers[1].post_attention_layernorm, i % 128),
              ReferenceValue(1, "model.layers.1.post_attention_layernorm.weight", i % 128));
  }
}

TEST(RandomCheckpointTest, SameOptionsSameBytesOtherSeedOtherBytes) {
  ScratchDir a, b, c;
  RandomCheckpointOptions options{.preset = "tiny", .seed = 7, .tie_word_embeddings = false};
  options.out_dir = a.path();
  ASSERT_TRUE(WriteRandomCheckpoint(options).ok());
  options.out_dir = b.path();
  ASSERT_TRUE(WriteRandomCheckpoint(options).ok());
  options.out_dir = c.path();
  options.seed = 8;
  ASSERT_TRUE(WriteRandomCheckpoint(options).ok());
  // Plain comparisons: printing 78 MB strings on failure would take minutes.
  for (const char* file : {"model.safetensors", "config.json", "generation_config.json"}) {
    EXPECT_TRUE(Read(a / file) == Read(b / file)) << file;
  }
  EXPECT_FALSE(Read(a / "model.safetensors") == Read(c / "model.safetensors"));
  EXPECT_EQ(Read(a / "config.json"), Read(c / "config.json"));
}

TEST(RandomCheckpointTest, ValuesDependOnlyOnSeedNameAndIndex) {
  std::vector<uint16_t> whole(1000), part(10);
  RandomTensorValues(5, "model.layers.3.mlp.up_proj.weight", 0, 1000, whole.data());
  RandomTensorValues(5, "model.layers.3.mlp.up_proj.weight", 990, 10, part.data());
  EXPECT_TRUE(std::equal(part.begin(), part.end(), whole.begin() + 990));
  RandomTensorValues(5, "model.layers.3.mlp.gate_proj.weight", 990, 10, part.data());
  EXPECT_FALSE(std::equal(part.begin(), part.end(), whole.begin() + 990));
}

// Mean and standard deviation of `count` values of tensor `name`, seed 1.
std::pair<double, double> Moments(const std::string& name, int count) {
  std::vector<uint16_t> bits(count);
  RandomTensorValues(1, name, 0, count, bits.data());
  double sum = 0, sum_sq = 0;
  for (uint16_t b : bits) {
    float v;
    uint32_t word = static_cast<uint32_t>(b) << 16;
    std::memcpy(&v, &word, 4);
    sum += v;
    sum_sq += static_cast<double>(v) * v;
  }
  double mean = sum / count;
  return {mean, std::sqrt(sum_sq / count - mean * mean)};
}

TEST(RandomCheckpointTest, ValuesHaveTheIntendedSpread) {
  auto [linear_mean, linear_std] = Moments("model.layers.0.self_attn.q_proj.weight", 100000);
  EXPECT_NEAR(linear_mean, 0.0, 0.001);
  EXPECT_NEAR(linear_std, 0.02, 0.0005);
  auto [bias_mean, bias_std] = Moments("model.layers.0.self_attn.q_proj.bias", 100000);
  EXPECT_NEAR(bias_std, 0.05, 0.001);
  auto [norm_mean, norm_std] = Moments("model.norm.weight", 100000);
  EXPECT_NEAR(norm_mean, 1.0, 0.002);
  EXPECT_NEAR(norm_std, 0.1 / std::sqrt(3.0), 0.002);
}

TEST(RandomCheckpointTest, WritesQwen25Configs) {
  ScratchDir dir;
  // Two layers instead of 24 keep the file small; every other field is the preset's.
  RandomCheckpointOptions options{.preset = "qwen2.5-0.5b", .seed = 1, .out_dir = dir.path()};
  options.num_layers = 2;
  ASSERT_TRUE(WriteRandomCheckpoint(options).ok());
  Json config = Json::parse(Read(dir / "config.json"));
  EXPECT_EQ(config["architectures"], Json::array({"Qwen2ForCausalLM"}));
  EXPECT_EQ(config["model_type"], "qwen2");
  EXPECT_EQ(config["hidden_size"], 896);
  EXPECT_EQ(config["intermediate_size"], 4864);
  EXPECT_EQ(config["num_hidden_layers"], 2);
  EXPECT_EQ(config["num_attention_heads"], 14);
  EXPECT_EQ(config["num_key_value_heads"], 2);
  EXPECT_EQ(config["vocab_size"], 151936);
  EXPECT_EQ(config["tie_word_embeddings"], true);
  EXPECT_EQ(config["torch_dtype"], "bfloat16");
  EXPECT_EQ(config["bos_token_id"], 151643);
  EXPECT_EQ(config["eos_token_id"], 151645);
  EXPECT_EQ(config["rope_theta"], 1000000.0);
  EXPECT_EQ(config["rms_norm_eps"], 1e-6);
  EXPECT_EQ(config["max_position_embeddings"], 32768);
  EXPECT_EQ(config["use_sliding_window"], false);
  EXPECT_EQ(config["hidden_act"], "silu");
  EXPECT_FALSE(config.contains("head_dim"));  // 896 / 14 already
  Json generation = Json::parse(Read(dir / "generation_config.json"));
  EXPECT_EQ(generation["eos_token_id"], Json::array({151645, 151643}));
  EXPECT_EQ(generation["pad_token_id"], 151643);
  EXPECT_EQ(generation["do_sample"], true);
  EXPECT_EQ(generation["temperature"], 0.7);
  EXPECT_EQ(generation["top_p"], 0.8);
  EXPECT_EQ(generation["top_k"], 20);
  EXPECT_EQ(generation["repetition_penalty"], 1.1);
  EXPECT_TRUE(Checkpoint::Load(dir.path()).ok());
}

TEST(RandomCheckpointTest, FullPresetHasQwen25Size) {
  auto config = RandomCheckpointConfig({.preset = "qwen2.5-0.5b"});
  ASSERT_TRUE(config.ok()) << config.status();
  size_t bytes = 0;
  for (const TensorSpec& spec : Qwen2TensorSpecs(*config, DType::kBF16)) bytes += spec.nbytes();
  EXPECT_EQ(bytes, 988065536u);  // Qwen2.5-0.5B's 494,032,768 parameters in bf16
  EXPECT_EQ(config->head_dim, 64);
}

TEST(RandomCheckpointTest, TensorsAreStoredInModelOrder) {
  ScratchDir dir;
  ASSERT_TRUE(
      WriteRandomCheckpoint({.preset = "tiny", .tie_word_embeddings = false, .out_dir = dir.path()}).ok());
  auto file = SafetensorsFile::Open(dir / "model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  const auto& tensors = (*file)->tensors();
  ASSERT_EQ(tensors.size(), 1u + 2 * 12 + 2);
  EXPECT_EQ(tensors.front().name, "model.embed_tokens.weight");
  EXPECT_EQ(tensors[1].name, "model.layers.0.input_layernorm.weight");
  EXPECT_EQ(tensors[13].name, "model.layers.1.input_layernorm.weight");
  EXPECT_EQ(tensors[tensors.size() - 2].name, "model.norm.weight");
  EXPECT_EQ(tensors.back().name, "lm_head.weight");
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
}

TEST(RandomCheckpointTest, CopiesTheTokenizerAndWritesItsConfig) {
  ScratchDir dir;
  dir.Write("src.json", R"({"added_tokens": [{"id": 151643, "content": "<|endoftext|>", "special": true},
      {"id": 151665, "content": "<tool_response>", "special": false, "lstrip": false, "rstrip": false,
       "normalized": false, "single_word": false}], "model": {"type": "BPE"}})");
  ASSERT_TRUE(WriteRandomCheckpoint({.out_dir = dir / "out", .tokenizer_path = dir / "src.json"}).ok());
  EXPECT_EQ(Read(dir / "out/tokenizer.json"), Read(dir / "src.json"));
  Json config = Json::parse(Read(dir / "out/tokenizer_config.json"));
  EXPECT_EQ(config["eos_token"], "<|im_end|>");
  EXPECT_EQ(config["pad_token"], "<|endoftext|>");
  EXPECT_TRUE(config["bos_token"].is_null());
  EXPECT_EQ(config["model_max_length"], 131072);
  EXPECT_EQ(config["tokenizer_class"], "Qwen2Tokenizer");
  EXPECT_EQ(config["errors"], "replace");
  EXPECT_EQ(config["split_special_tokens"], false);
  EXPECT_EQ(config["chat_template"], std::string(Qwen25ChatTemplate()));
  const Json& added = config["added_tokens_decoder"];
  EXPECT_EQ(added.size(), 23u);  // Qwen2.5's 22 plus the tokenizer's extra one
  EXPECT_EQ(added["151644"]["content"], "<|im_start|>");
  EXPECT_EQ(added["151645"]["special"], true);
  EXPECT_EQ(added["151657"]["content"], "<tool_call>");
  EXPECT_EQ(added["151657"]["special"], false);
  EXPECT_EQ(added["151664"]["content"], "<|file_sep|>");
  EXPECT_EQ(added["151665"]["content"], "<tool_response>");
}

TEST(RandomCheckpointTest, ChatTemplateIsQwen25s) {
  std::string_view chat_template = Qwen25ChatTemplate();
  EXPECT_EQ(chat_template.size(), 2507u);
  EXPECT_TRUE(chat_template.starts_with("{%- if tools %}\n    {{- '<|im_start|>system\\n' }}"));
  EXPECT_TRUE(chat_template.ends_with("{{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n"));
}

TEST(RandomCheckpointTest, RejectsBadOptions) {
  EXPECT_THAT(WriteRandomCheckpoint({.preset = "huge", .out_dir = "/tmp/x"}).message(),
              HasSubstr("unknown preset"));
  RandomCheckpointOptions options{.out_dir = "/tmp/x"};
  options.num_kv_heads = 3;
  EXPECT_THAT(WriteRandomCheckpoint(options).message(), HasSubstr("num_kv_heads must divide num_heads"));
  EXPECT_THAT(WriteRandomCheckpoint({}).message(), HasSubstr("output directory"));
  // Nothing the loader refuses is written: an odd head (rotary pairs), a vocabulary without the eos id.
  RandomCheckpointOptions odd_head{.out_dir = "/tmp/x"};
  odd_head.hidden_size = 64, odd_head.num_heads = 2, odd_head.num_kv_heads = 1, odd_head.head_dim = 3;
  EXPECT_THAT(WriteRandomCheckpoint(odd_head).message(), HasSubstr("make-model: head_dim: 3 is odd"));
  RandomCheckpointOptions small_vocab{.out_dir = "/tmp/x"};
  small_vocab.vocab_size = 1000;
  EXPECT_THAT(WriteRandomCheckpoint(small_vocab).message(),
              HasSubstr("make-model: eos_token_id: 151645 is outside the vocabulary (vocab_size 1000)"));
  ScratchDir dir;
  EXPECT_THAT(WriteRandomCheckpoint({.out_dir = dir.path(), .tokenizer_path = dir / "none.json"}).message(),
              HasSubstr(dir / "none.json"));
}

}  // namespace
}  // namespace doze

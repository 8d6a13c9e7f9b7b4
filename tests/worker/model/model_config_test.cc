#include "worker/model/model_config.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace doze {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Qwen2.5-0.5B-Instruct's config.json, as published.
constexpr char kQwen25Config[] = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21, "model_type": "qwen2",
  "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.43.1", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})";

TEST(ModelConfigTest, ParsesQwen25) {
  auto config = ParseModelConfig(kQwen25Config, "config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->hidden_size, 896);
  EXPECT_EQ(config->intermediate_size, 4864);
  EXPECT_EQ(config->num_hidden_layers, 24);
  EXPECT_EQ(config->num_attention_heads, 14);
  EXPECT_EQ(config->num_key_value_heads, 2);
  EXPECT_EQ(config->head_dim, 64);  // absent: hidden / heads
  EXPECT_EQ(config->q_size(), 896);
  EXPECT_EQ(config->kv_size(), 128);
  EXPECT_EQ(config->vocab_size, 151936);
  EXPECT_EQ(config->max_position_embeddings, 32768);
  EXPECT_EQ(config->rope_theta, 1000000.0);
  EXPECT_EQ(config->rms_norm_eps, 1e-6);
  EXPECT_TRUE(config->tie_word_embeddings);
  EXPECT_EQ(config->torch_dtype, DType::kBF16);
  EXPECT_EQ(config->bos_token_id, 151643);
  EXPECT_THAT(config->eos_token_ids, ElementsAre(151645));
}

// Attention settings that change nothing pass: rope_scaling null or "default", a sliding window switched off
// or as long as the context.
TEST(ModelConfigTest, NeutralAttentionSettingsPass) {
  const std::string base =
      R"({"hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1,
      "vocab_size": 4, "max_position_embeddings": 64)";
  for (const char* extra : {R"(, "rope_scaling": null})", R"(, "rope_theta": 0.5})",
                            R"(, "rope_scaling": {"rope_type": "default"}})",
                            R"(, "use_sliding_window": false, "sliding_window": 16})",
                            R"(, "use_sliding_window": true, "sliding_window": 64})"}) {
    EXPECT_TRUE(ParseModelConfig(base + extra, "config.json").ok()) << extra;
  }
}

TEST(ModelConfigTest, EosMayBeAList) {
  std::string text = kQwen25Config;
  text.replace(text.find("\"eos_token_id\": 151645"), 22, "\"eos_token_id\": [151645, 151643]");
  auto config = ParseModelConfig(text, "config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->eos_token_ids, ElementsAre(151645, 151643));
}

TEST(ModelConfigTest, HeadDimWhenPresentOverridesHiddenOverHeads) {
  auto config = ParseModelConfig(R"({"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 2,
      "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 48, "vocab_size": 100})",
                                 "config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->head_dim, 48);
  EXPECT_EQ(config->q_size(), 192);
  EXPECT_EQ(config->kv_size(), 96);
}

TEST(ModelConfigTest, DefaultsFollowTransformersQwen2Config) {
  auto config = ParseModelConfig(R"({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
      "num_attention_heads": 4, "vocab_size": 100})",
                                 "config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->num_key_value_heads, 4);
  EXPECT_EQ(config->head_dim, 16);
  EXPECT_FALSE(config->tie_word_embeddings);
  EXPECT_EQ(config->bos_token_id, -1);
  EXPECT_TRUE(config->eos_token_ids.empty());
}

struct BadConfig {
  const char* name;
  const char* json;
  const char* error;
};

class ModelConfigBadTest : public testing::TestWithParam<BadConfig> {};

TEST_P(ModelConfigBadTest, NamesTheSourceAndKey) {
  auto config = ParseModelConfig(GetParam().json, "/models/x/config.json");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("/models/x/config.json: "));
  EXPECT_THAT(config.status().message(), HasSubstr(GetParam().error));
}

INSTANTIATE_TEST_SUITE_P(
    Table, ModelConfigBadTest,
    testing::Values(
        BadConfig{"NotJson", "{\n  \"hidden_size\": 8,\n}",
                  "not valid JSON: [json.exception.parse_error.101] parse error at line 3, column 1"},
        BadConfig{"NotAnObject", "[1]", "not a JSON object"},
        // (1e-300)^(-62/64) is ~1e290 radians a position: past fp32, the angles become inf and cos(inf) NaN.
        BadConfig{"TinyRopeTheta", R"({"hidden_size": 128, "intermediate_size": 8, "num_hidden_layers": 1,
                  "num_attention_heads": 2, "vocab_size": 4, "rope_theta": 1e-300})",
                  "rope_theta: 1e-300 makes the rotary angles overflow fp32"},
        BadConfig{"EpsBelowFp32", R"({"hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
                  "num_attention_heads": 1, "vocab_size": 4, "rms_norm_eps": 1e-50})",
                  "rms_norm_eps: 1e-50 rounds to 0 in fp32"},
        BadConfig{
            "MissingHidden",
            R"({"intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1, "vocab_size": 4})",
            "hidden_size: missing required key"},
        BadConfig{
            "MissingVocab",
            R"({"hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1})",
            "vocab_size: missing required key"},
        BadConfig{"NegativeLayers", R"({"hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": -1,
                  "num_attention_heads": 1, "vocab_size": 4})",
                  "num_hidden_layers: must be an integer >= 1"},
        BadConfig{"StringSize", R"({"hidden_size": "8", "intermediate_size": 8, "num_hidden_layers": 1,
                  "num_attention_heads": 1, "vocab_size": 4})",
                  "hidden_size: must be an integer"},
        BadConfig{"WrongArchitecture", R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 8,
                  "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1, "vocab_size": 4})",
                  "architectures: expected [\"Qwen2ForCausalLM\"]"},
        BadConfig{"UnknownDtype", R"({"torch_dtype": "int8", "hidden_size": 8, "intermediate_size": 8,
                  "num_hidden_layers": 1, "num_attention_heads": 1, "vocab_size": 4})",
                  "torch_dtype: expected bfloat16, float16 or float32"},
        BadConfig{"HeadsDoNotDivide", R"({"hidden_size": 10, "intermediate_size": 8, "num_hidden_layers": 1,
                  "num_attention_heads": 3, "vocab_size": 4})",
                  "not divisible by num_attention_heads"},
        BadConfig{"KvHeadsDoNotDivide", R"({"hidden_size": 12, "intermediate_size": 8, "num_hidden_layers": 1,
                  "num_attention_heads": 3, "num_key_value_heads": 2, "vocab_size": 4})",
                  "num_key_value_heads: 2 does not divide"},
        BadConfig{"BadEos", R"({"hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
                  "num_attention_heads": 1, "vocab_size": 4, "eos_token_id": ["x"]})",
                  "eos_token_id: must be a token id"},
        // Attention other than Qwen2's default would give other results than transformers: refused.
        BadConfig{"RopeScaling", R"({"hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
                  "num_attention_heads": 1, "vocab_size": 4, "rope_scaling": {"type": "yarn", "factor": 4}})",
                  "rope_scaling: only the default rotary embedding is supported"},
        // transformers reads rope_type before the older type.
        BadConfig{"RopeTypeBeforeType", R"({"hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
                  "num_attention_heads": 1, "vocab_size": 4,
                  "rope_scaling": {"rope_type": "yarn", "type": "default", "factor": 4}})",
                  "rope_scaling: only the default rotary embedding is supported"},
        BadConfig{"OtherActivation", R"({"hidden_act": "gelu", "hidden_size": 8, "intermediate_size": 8,
                  "num_hidden_layers": 1, "num_attention_heads": 1, "vocab_size": 4})",
                  "hidden_act: expected \"silu\", got \"gelu\""},
        BadConfig{"OtherModelType", R"({"model_type": "llama", "hidden_size": 8, "intermediate_size": 8,
                  "num_hidden_layers": 1, "num_attention_heads": 1, "vocab_size": 4})",
                  "model_type: expected \"qwen2\", got \"llama\""},
        BadConfig{"OddHeadDim", R"({"hidden_size": 6, "intermediate_size": 8, "num_hidden_layers": 1,
                  "num_attention_heads": 2, "vocab_size": 4})",
                  "head_dim: 3 is odd"},
        // 2^29 + 16 heads of 8: the width overflowed an int and the model ran off its buffers.
        BadConfig{"WidthOverflowsAnInt", R"({"hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
                  "num_attention_heads": 536870928, "num_key_value_heads": 8, "head_dim": 8, "vocab_size": 4})",
                  "num_attention_heads: 536870928 heads of 8 dimensions exceed 1048576 in all"},
        BadConfig{"ShortSlidingWindow", R"({"hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
                  "num_attention_heads": 1, "vocab_size": 4, "max_position_embeddings": 64,
                  "use_sliding_window": true, "sliding_window": 16})",
                  "use_sliding_window: a sliding window of 16 tokens"}),
    [](const testing::TestParamInfo<BadConfig>& info) { return info.param.name; });

// A value nested 100,000 deep is described by its kind in the error, not printed (which recursed that deep
// and overflowed the stack).
TEST(ModelConfigTest, DeeplyNestedValueIsRefusedWithAShortMessage) {
  const int depth = 100000;
  const std::string text = R"({"intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1,
      "vocab_size": 4, "hidden_size": )" +
                           std::string(depth, '[') + std::string(depth, ']') + "}";
  auto config = ParseModelConfig(text, "config.json");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            "config.json: hidden_size: must be an integer >= 1, got an array of 1 items");
}

TEST(GenerationConfigTest, ParsesQwen25Instruct) {
  auto config = ParseGenerationConfig(R"({"bos_token_id": 151643, "pad_token_id": 151643, "do_sample": true,
      "eos_token_id": [151645, 151643], "repetition_penalty": 1.1, "temperature": 0.7, "top_p": 0.8,
      "top_k": 20, "transformers_version": "4.37.0"})",
                                      "generation_config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->eos_token_ids, ElementsAre(151645, 151643));
  EXPECT_EQ(config->bos_token_id, 151643);
  EXPECT_EQ(config->pad_token_id, 151643);
  EXPECT_TRUE(config->do_sample);
  EXPECT_EQ(config->repetition_penalty, 1.1);
  EXPECT_EQ(config->temperature, 0.7);
  EXPECT_EQ(config->top_p, 0.8);
  EXPECT_EQ(config->top_k, 20);
}

TEST(GenerationConfigTest, EosMayBeAnIntAndEverythingIsOptional) {
  auto config = ParseGenerationConfig(R"({"eos_token_id": 7})", "generation_config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->eos_token_ids, ElementsAre(7));
  EXPECT_FALSE(config->do_sample);
  EXPECT_EQ(config->top_k, 0);
}

TEST(GenerationConfigTest, RejectsOutOfRangeTopP) {
  auto config = ParseGenerationConfig(R"({"top_p": 1.5})", "gen.json");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("gen.json: top_p"));
}

}  // namespace
}  // namespace doze

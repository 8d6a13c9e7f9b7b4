#include "worker/model/checkpoint.h"

#include <sys/stat.h>

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/worker/model/test_dir.h"
#include "worker/model/random_checkpoint.h"
#include "worker/model/safetensors_writer.h"

namespace doze {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A value with its bf16 and fp16 encodings, worked out by hand.
struct Encoded {
  float value;
  uint16_t bf16, f16;
};
// The first elements of embed_tokens, lm_head and the last of model.norm in every checkpoint written here.
constexpr Encoded kEmbedHead[] = {
    {1.0f, 0x3F80, 0x3C00}, {-2.0f, 0xC000, 0xC000}, {0.5f, 0x3F00, 0x3800}, {3.0f, 0x4040, 0x4200}};
constexpr Encoded kLmHeadHead[] = {
    {-1.0f, 0xBF80, 0xBC00}, {0.25f, 0x3E80, 0x3400}, {2.0f, 0x4000, 0x4000}, {-0.5f, 0xBF00, 0xB800}};
constexpr Encoded kNormTail = {1.5f, 0x3FC0, 0x3E00};

// How to write (or spoil) a tiny checkpoint.
struct TinyOptions {
  DType dtype = DType::kBF16;
  bool tied = true;
  bool sharded = false;
  bool lm_head_when_untied = true;
  std::string drop = {};         // a tensor left out
  std::string wrong_shape = {};  // a tensor written one row short
};

// Writes `value` at element `i` of `bytes` in `dtype`.
void Put(DType dtype, const Encoded& value, size_t i, std::string* bytes) {
  if (dtype == DType::kF32) {
    std::memcpy(bytes->data() + 4 * i, &value.value, 4);
  } else {
    uint16_t bits = dtype == DType::kBF16 ? value.bf16 : value.f16;
    std::memcpy(bytes->data() + 2 * i, &bits, 2);
  }
}

// The bytes of one tensor: zeros except the hand-encoded values above.
std::string TensorBytes(const TensorSpec& spec) {
  std::string bytes(spec.nbytes(), '\0');
  for (size_t i = 0; i < 4; ++i) {
    if (spec.name == "model.embed_tokens.weight") Put(spec.dtype, kEmbedHead[i], i, &bytes);
    if (spec.name == "lm_head.weight") Put(spec.dtype, kLmHeadHead[i], i, &bytes);
  }
  if (spec.name == "model.norm.weight") Put(spec.dtype, kNormTail, spec.num_elements() - 1, &bytes);
  return bytes;
}

// Writes config.json, generation_config.json and the weights (one file, or two shards with an index).
void WriteTiny(const ScratchDir& dir, const TinyOptions& options) {
  dir.Write("config.json", TinyConfigJson(options.tied));
  dir.Write("generation_config.json", R"({"eos_token_id": [2, 3], "temperature": 0.5})");
  ModelConfig config = *ParseModelConfig(TinyConfigJson(false), "config.json");
  std::vector<TensorSpec> specs;
  for (TensorSpec spec : Qwen2TensorSpecs(config, options.dtype)) {
    if (spec.name == options.drop ||
        (spec.name == "lm_head.weight" && (options.tied || !options.lm_head_when_untied))) {
      continue;
    }
    if (spec.name == options.wrong_shape) --spec.shape[0];
    specs.push_back(spec);
  }
  std::vector<std::string> data;
  for (const TensorSpec& spec : specs) data.push_back(TensorBytes(spec));
  if (!options.sharded) {
    ASSERT_TRUE(WriteSafetensorsFile(dir / "model.safetensors", specs, data).ok());
    return;
  }
  const size_t half = specs.size() / 2;
  const std::string names[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
  std::string weight_map;
  for (size_t i = 0; i < specs.size(); ++i) {
    absl::StrAppend(&weight_map, i ? ", " : "", "\"", specs[i].name, "\": \"", names[i >= half], "\"");
  }
  dir.Write("model.safetensors.index.json",
            absl::StrCat(R"({"metadata": {"total_size": 0}, "weight_map": {)", weight_map, "}}"));
  ASSERT_TRUE(WriteSafetensorsFile(dir / names[0], {specs.begin(), specs.begin() + half},
                                   {data.begin(), data.begin() + half})
                  .ok());
  ASSERT_TRUE(WriteSafetensorsFile(dir / names[1], {specs.begin() + half, specs.end()},
                                   {data.begin() + half, data.end()})
                  .ok());
}

// The first four values of `view`, widened.
std::vector<float> Head(const TensorView& view) {
  std::vector<float> out(4);
  ToFloat(view, 0, 4, out.data());
  return out;
}

struct RoundTrip {
  const char* name;
  DType dtype;
  bool tied;
  bool sharded;
};

class CheckpointRoundTripTest : public testing::TestWithParam<RoundTrip> {};

TEST_P(CheckpointRoundTripTest, LoadsWhatWasWritten) {
  const RoundTrip& param = GetParam();
  ScratchDir dir;
  WriteTiny(dir, {.dtype = param.dtype, .tied = param.tied, .sharded = param.sharded});
  auto checkpoint = Checkpoint::Load(dir.path());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  const Checkpoint& c = **checkpoint;
  EXPECT_EQ(c.config().hidden_size, 8);
  EXPECT_EQ(c.config().tie_word_embeddings, param.tied);
  EXPECT_THAT(c.generation_config().eos_token_ids, ElementsAre(2, 3));
  EXPECT_EQ(c.generation_config().temperature, 0.5);
  EXPECT_EQ(c.tokenizer_path(), dir / "tokenizer.json");

  const ModelWeights& w = c.weights();
  ASSERT_EQ(w.layers.size(), 1u);
  EXPECT_EQ(w.embed_tokens.dtype, param.dtype);
  EXPECT_EQ(w.embed_tokens.shape, (std::vector<int64_t>{10, 8}));
  EXPECT_EQ(w.layers[0].q_proj.shape, (std::vector<int64_t>{8, 8}));
  EXPECT_EQ(w.layers[0].k_proj.shape, (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(w.layers[0].v_bias.shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(w.layers[0].o_proj.shape, (std::vector<int64_t>{8, 8}));
  EXPECT_EQ(w.layers[0].gate_proj.shape, (std::vector<int64_t>{16, 8}));
  EXPECT_EQ(w.layers[0].down_proj.shape, (std::vector<int64_t>{8, 16}));
  EXPECT_THAT(Head(w.embed_tokens), ElementsAre(1.0f, -2.0f, 0.5f, 3.0f));
  float norm_tail;
  ToFloat(w.norm, 7, 1, &norm_tail);
  EXPECT_EQ(norm_tail, 1.5f);

  const size_t size = DTypeSize(param.dtype);
  // embed_tokens, then the layer (norm, q, q bias, k, k bias, v, v bias, o, norm, gate, up, down), then norm.
  const size_t body = (80 + 8 + 64 + 8 + 32 + 4 + 32 + 4 + 64 + 8 + 128 * 3 + 8) * size;
  if (param.tied) {
    EXPECT_EQ(w.lm_head.data, w.embed_tokens.data);
    EXPECT_EQ(c.weight_bytes(), body);
  } else {
    EXPECT_NE(w.lm_head.data, w.embed_tokens.data);
    EXPECT_THAT(Head(w.lm_head), ElementsAre(-1.0f, 0.25f, 2.0f, -0.5f));
    EXPECT_EQ(c.weight_bytes(), body + 80 * size);
  }
}

INSTANTIATE_TEST_SUITE_P(Table, CheckpointRoundTripTest,
                         testing::Values(RoundTrip{"Bf16Tied", DType::kBF16, true, false},
                                         RoundTrip{"Bf16Untied", DType::kBF16, false, false},
                                         RoundTrip{"F16Tied", DType::kF16, true, false},
                                         RoundTrip{"F32Untied", DType::kF32, false, false},
                                         RoundTrip{"Bf16TiedSharded", DType::kBF16, true, true},
                                         RoundTrip{"F16UntiedSharded", DType::kF16, false, true}),
                         [](const testing::TestParamInfo<RoundTrip>& info) { return info.param.name; });

TEST(CheckpointTest, WithoutGenerationConfigFallsBackToConfigTokens) {
  ScratchDir dir;
  WriteTiny(dir, {});
  std::filesystem::remove(dir / "generation_config.json");
  auto checkpoint = Checkpoint::Load(dir.path());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_THAT((*checkpoint)->generation_config().eos_token_ids, ElementsAre(2, 3));
  EXPECT_EQ((*checkpoint)->generation_config().bos_token_id, 1);
}

TEST(CheckpointTest, LoadsTheRandomWriterOutput) {
  ScratchDir dir;
  RandomCheckpointOptions options{
      .preset = "tiny", .seed = 3, .tie_word_embeddings = false, .out_dir = dir.path()};
  options.num_layers = 3;
  options.head_dim = 32;  // differs from hidden / heads = 64, so config.json carries it
  ASSERT_TRUE(WriteRandomCheckpoint(options).ok());
  auto checkpoint = Checkpoint::Load(dir.path());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  const Checkpoint& c = **checkpoint;
  EXPECT_EQ(c.config().head_dim, 32);
  EXPECT_EQ(c.config().num_hidden_layers, 3);
  EXPECT_EQ(c.weights().layers[2].q_proj.shape, (std::vector<int64_t>{64, 128}));
  EXPECT_EQ(c.weights().lm_head.shape, (std::vector<int64_t>{151936, 128}));
  EXPECT_NE(c.weights().lm_head.data, c.weights().embed_tokens.data);
  EXPECT_THAT(c.generation_config().eos_token_ids, ElementsAre(151645, 151643));
}

struct BadCheckpoint {
  const char* name;
  TinyOptions options;
  const char* remove;  // a file deleted after writing, or nullptr
  const char* error;   // a fragment of the expected message
};

class CheckpointBadTest : public testing::TestWithParam<BadCheckpoint> {};

TEST_P(CheckpointBadTest, FailsNamingTheProblem) {
  const BadCheckpoint& bad = GetParam();
  ScratchDir dir;
  WriteTiny(dir, bad.options);
  if (bad.remove != nullptr) std::filesystem::remove(dir / bad.remove);
  auto checkpoint = Checkpoint::Load(dir.path());
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_THAT(checkpoint.status().message(), HasSubstr(dir.path()));
  EXPECT_THAT(checkpoint.status().message(), HasSubstr(bad.error));
}

INSTANTIATE_TEST_SUITE_P(
    Table, CheckpointBadTest,
    testing::Values(
        BadCheckpoint{"MissingConfig", {}, "config.json", "config.json: cannot open"},
        BadCheckpoint{"MissingWeights", {}, "model.safetensors", "model.safetensors: not found"},
        BadCheckpoint{"MissingShard",
                      {.sharded = true},
                      "model-00002-of-00002.safetensors",
                      "model-00002-of-00002.safetensors: cannot open"},
        BadCheckpoint{"MissingTensor",
                      {.drop = "model.layers.0.mlp.up_proj.weight"},
                      nullptr,
                      "missing tensor model.layers.0.mlp.up_proj.weight"},
        BadCheckpoint{"MissingBias",
                      {.sharded = true, .drop = "model.layers.0.self_attn.k_proj.bias"},
                      nullptr,
                      "model.safetensors.index.json: missing tensor model.layers.0.self_attn.k_proj.bias"},
        BadCheckpoint{
            "WrongShape",
            {.wrong_shape = "model.layers.0.self_attn.o_proj.weight"},
            nullptr,
            "tensor model.layers.0.self_attn.o_proj.weight has shape [7, 8] but config.json implies [8, 8]"},
        BadCheckpoint{"UntiedWithoutLmHead",
                      {.tied = false, .lm_head_when_untied = false},
                      nullptr,
                      "missing tensor lm_head.weight (config.json has tie_word_embeddings false)"}),
    [](const testing::TestParamInfo<BadCheckpoint>& info) { return info.param.name; });

TEST(CheckpointTest, CorruptFilesAreReportedWithTheirPath) {
  ScratchDir dir;
  WriteTiny(dir, {});
  auto bytes = ReadFileToString(dir / "model.safetensors");
  ASSERT_TRUE(bytes.ok());
  dir.Write("model.safetensors", bytes->substr(0, bytes->size() - 3));
  auto checkpoint = Checkpoint::Load(dir.path());
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_THAT(checkpoint.status().message(), HasSubstr(dir / "model.safetensors: truncated"));

  dir.Write("config.json", "{\"hidden_size\": ");
  checkpoint = Checkpoint::Load(dir.path());
  EXPECT_THAT(checkpoint.status().message(), HasSubstr(dir / "config.json: not valid JSON: "));
}

// A FIFO (which would block the open until a writer came) or a folder in a file's place is refused at once,
// naming it.
TEST(CheckpointTest, FilesThatAreNotRegularAreRefused) {
  for (const char* name : {"model.safetensors", "config.json"}) {
    for (const bool fifo : {true, false}) {
      ScratchDir dir;
      WriteTiny(dir, {});
      const std::string path = dir / name;
      std::filesystem::remove(path);
      if (fifo) {
        ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0) << path;
      } else {
        std::filesystem::create_directory(path);
      }
      auto checkpoint = Checkpoint::Load(dir.path());
      ASSERT_FALSE(checkpoint.ok()) << path;
      EXPECT_THAT(checkpoint.status().message(), HasSubstr(path + ": not a regular file"));
    }
  }
}

// A symlink loop (or a path that cannot be searched) in a file's place is reported with the path; the check
// for the file threw and ended the process.
TEST(CheckpointTest, SymlinkLoopsAreReportedWithTheirPath) {
  for (const char* name : {"generation_config.json", "model.safetensors.index.json"}) {
    ScratchDir dir;
    WriteTiny(dir, {});
    std::filesystem::remove(dir / "generation_config.json");
    if (std::string(name) == "model.safetensors.index.json")
      std::filesystem::remove(dir / "model.safetensors");
    std::filesystem::create_symlink(dir / "loop", dir / name);
    std::filesystem::create_symlink(dir / name, dir / "loop");
    auto checkpoint = Checkpoint::Load(dir.path());
    ASSERT_FALSE(checkpoint.ok()) << name;
    EXPECT_THAT(checkpoint.status().message(), HasSubstr(dir / name + ": cannot open: Too many levels"));
  }
}

// As transformers, model.safetensors is taken when it is there, whatever index lies beside it.
TEST(CheckpointTest, SingleFileIsTakenBeforeAnIndex) {
  ScratchDir dir;
  WriteTiny(dir, {});
  dir.Write("model.safetensors.index.json",
            R"({"weight_map": {"model.embed_tokens.weight": "model-00009-of-00009.safetensors"}})");
  auto checkpoint = Checkpoint::Load(dir.path());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
}

// num_hidden_layers sizes nothing before its layers' tensors are found: a huge count is a missing tensor,
// not an allocation that fails.
TEST(CheckpointTest, LayerCountPastTheTensorsIsAMissingTensor) {
  ScratchDir dir;
  WriteTiny(dir, {});
  std::string config = TinyConfigJson(true);
  config.replace(config.find("\"num_hidden_layers\": 1"), 22, "\"num_hidden_layers\": 1073741824");
  dir.Write("config.json", config);
  auto checkpoint = Checkpoint::Load(dir.path());
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_THAT(checkpoint.status().message(),
              HasSubstr("missing tensor model.layers.1.input_layernorm.weight"));
}

// Layers the files hold past num_hidden_layers would silently make a shallower model: refused.
TEST(CheckpointTest, LayersPastTheLayerCountAreRefused) {
  ScratchDir dir;
  std::string two_layers = TinyConfigJson(true);
  two_layers.replace(two_layers.find("\"num_hidden_layers\": 1"), 22, "\"num_hidden_layers\": 2");
  std::vector<TensorSpec> specs =
      Qwen2TensorSpecs(*ParseModelConfig(two_layers, "config.json"), DType::kBF16);
  std::vector<std::string> data;
  for (const TensorSpec& spec : specs) data.push_back(TensorBytes(spec));
  ASSERT_TRUE(WriteSafetensorsFile(dir / "model.safetensors", specs, data).ok());
  dir.Write("config.json", TinyConfigJson(true));
  auto checkpoint = Checkpoint::Load(dir.path());
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_THAT(
      checkpoint.status().message(),
      HasSubstr("holds model.layers.1.input_layernorm.weight but config.json has 1 num_hidden_layers"));
}

// An eos id past the vocabulary is never produced, so generation would never stop at it: refused.
TEST(CheckpointTest, EosPastTheVocabularyIsRefused) {
  ScratchDir dir;
  WriteTiny(dir, {});
  dir.Write("generation_config.json", R"({"eos_token_id": [2, 10]})");
  auto checkpoint = Checkpoint::Load(dir.path());
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_THAT(
      checkpoint.status().message(),
      HasSubstr("generation_config.json: eos_token_id: 10 is outside the vocabulary (vocab_size 10)"));
}

// tokenizer_config.json is optional; one that is not a JSON object is refused (it was never read).
TEST(CheckpointTest, TokenizerConfigMustBeAJsonObject) {
  ScratchDir dir;
  WriteTiny(dir, {});
  dir.Write("tokenizer_config.json", R"({"chat_template": "{{ messages }}"})");
  EXPECT_TRUE(Checkpoint::Load(dir.path()).ok());  // another template: served with Qwen2.5's, said in the log
  dir.Write("tokenizer_config.json", "garbage{{");
  auto checkpoint = Checkpoint::Load(dir.path());
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_THAT(checkpoint.status().message(), HasSubstr(dir / "tokenizer_config.json: not valid JSON"));
}

TEST(CheckpointTest, IndexMustAgreeWithTheShards) {
  ScratchDir dir;
  WriteTiny(dir, {.sharded = true});
  auto index = ReadFileToString(dir / "model.safetensors.index.json");
  ASSERT_TRUE(index.ok());
  std::string text = *index;
  // Claim the first tensor lives in the second shard.
  text.replace(text.find("model-00001"), 11, "model-00002");
  dir.Write("model.safetensors.index.json", text);
  auto checkpoint = Checkpoint::Load(dir.path());
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_THAT(
      checkpoint.status().message(),
      HasSubstr(
          "puts model.embed_tokens.weight in model-00002-of-00002.safetensors, which does not hold it"));
}

TEST(CheckpointTest, BadGenerationConfigIsReported) {
  ScratchDir dir;
  WriteTiny(dir, {});
  dir.Write("generation_config.json", R"({"top_k": -1})");
  auto checkpoint = Checkpoint::Load(dir.path());
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_THAT(checkpoint.status().message(), HasSubstr(dir / "generation_config.json: top_k"));
}

}  // namespace
}  // namespace doze

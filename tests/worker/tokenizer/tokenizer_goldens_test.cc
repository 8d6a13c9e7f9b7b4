// Every corpus string's ids and decoded text against Hugging Face `tokenizers` goldens
// (scripts/goldens/tokenizer_goldens.py writes tests/goldens/tokenizer/goldens.jsonl), and the native chat
// template against transformers' apply_chat_template (scripts/goldens/chat_template_goldens.py writes
// chat_template.jsonl), its ids against those of that text.
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/worker/tokenizer/tokenizer_test_util.h"
#include "worker/tokenizer/chat_template.h"

namespace doze {
namespace {

std::string SourcePath(const std::string& relative) {
  const char* dir = std::getenv("DOZE_SOURCE_DIR");
  return (dir ? std::string(dir) + "/" : std::string()) + relative;
}

// Reads a JSON-lines file, splitting on '\n' only (U+2028 and U+0085 are escaped, but never trust a reader).
std::vector<nlohmann::json> ReadJsonLines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<nlohmann::json> records;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) records.push_back(nlohmann::json::parse(line));
  }
  return records;
}

std::string GoldensPath() {
  const char* override_path = std::getenv("DOZE_TOKENIZER_GOLDENS");
  return override_path ? override_path : SourcePath("tests/goldens/tokenizer/goldens.jsonl");
}

TEST(TokenizerGoldensTest, EveryCorpusStringMatchesHuggingFace) {
  std::string path = GoldensPath();
  ASSERT_TRUE(std::ifstream(path).good())
      << path
      << " is missing: run scripts/goldens/tokenizer_goldens.py (needs the Python `tokenizers` package)";
  std::vector<nlohmann::json> goldens = ReadJsonLines(path);
  std::vector<nlohmann::json> corpus = ReadJsonLines(SourcePath("tests/goldens/tokenizer/corpus.jsonl"));
  ASSERT_EQ(goldens.size(), corpus.size()) << "goldens are stale: regenerate them from the corpus";
  const Tokenizer& tokenizer = TestTokenizer();
  int mismatches = 0;
  for (size_t i = 0; i < goldens.size(); ++i) {
    const auto& golden = goldens[i];
    std::string text = golden["text"].get<std::string>();
    ASSERT_EQ(text, corpus[i].get<std::string>()) << "goldens are stale at line " << i + 1;
    std::vector<int32_t> want = golden["ids"].get<std::vector<int32_t>>();
    auto got = tokenizer.Encode(text);
    ASSERT_TRUE(got.ok()) << got.status();
    bool ok = *got == want && tokenizer.Decode(want) == golden["decoded"].get<std::string>();
    if (golden.contains("decoded_skip_special")) {
      ok = ok && tokenizer.Decode(want, true) == golden["decoded_skip_special"].get<std::string>();
    }
    if (!ok && ++mismatches <= 20) {
      ADD_FAILURE() << "line " << i + 1 << " " << nlohmann::json(text).dump() << "\n  want "
                    << nlohmann::json(want).dump() << "\n  got  " << nlohmann::json(*got).dump();
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << goldens.size() << " strings";
}

TEST(TokenizerGoldensTest, ChatTemplateMatchesTransformers) {
  std::string path = SourcePath("tests/goldens/tokenizer/chat_template.jsonl");
  ASSERT_TRUE(std::ifstream(path).good())
      << path << " is missing: run scripts/goldens/chat_template_goldens.py";
  std::vector<nlohmann::json> goldens = ReadJsonLines(path);
  ASSERT_FALSE(goldens.empty());
  for (const auto& golden : goldens) {
    std::vector<ChatMessage> messages;
    for (const auto& m : golden["messages"]) messages.push_back({m["role"], m["content"]});
    auto prompt = RenderChatPrompt(messages, golden["add_generation_prompt"].get<bool>());
    ASSERT_TRUE(prompt.ok()) << prompt.status();
    EXPECT_EQ(*prompt, golden["text"].get<std::string>()) << golden["messages"].dump();
    // The ids the engine gets: those of the transformers text (Encode is checked against HF above), except
    // where a message types a special token's text, which stays text (and decodes back to it).
    auto ids = EncodeChatPrompt(TestTokenizer(), messages, golden["add_generation_prompt"].get<bool>());
    ASSERT_TRUE(ids.ok()) << ids.status();
    const bool typed_special = std::any_of(messages.begin(), messages.end(), [](const ChatMessage& m) {
      return m.content.find("<|") != std::string::npos;
    });
    if (typed_special) {
      EXPECT_EQ(TestTokenizer().Decode(*ids), golden["text"].get<std::string>()) << golden["messages"].dump();
    } else {
      EXPECT_EQ(*ids, *TestTokenizer().Encode(golden["text"].get<std::string>()))
          << golden["messages"].dump();
    }
  }
}

}  // namespace
}  // namespace doze

#include "worker/engine/tokenizer_text_decoder.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/worker/tokenizer/tokenizer_test_util.h"

namespace doze {
namespace {

TEST(TokenizerTextDecoderTest, StreamsTheTextBack) {
  const Tokenizer& tokenizer = TestTokenizer();
  const std::string text = "Hello, 世界! Emoji split over tokens: 🎉🦀 done.";
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(text);
  ASSERT_TRUE(ids.ok()) << ids.status();
  TokenizerTextDecoderFactory factory(&tokenizer);
  std::unique_ptr<IncrementalTextDecoder> decoder = factory.NewDecoder();
  std::string streamed;
  for (int32_t id : *ids) streamed += decoder->Push(id);
  streamed += decoder->Flush();
  EXPECT_EQ(streamed, text);
}

TEST(TokenizerTextDecoderTest, SkipsSpecialTokensByDefault) {
  const Tokenizer& tokenizer = TestTokenizer();
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode("<|im_start|>hi");
  ASSERT_TRUE(ids.ok()) << ids.status();
  std::string streamed;
  std::unique_ptr<IncrementalTextDecoder> decoder = TokenizerTextDecoderFactory(&tokenizer).NewDecoder();
  for (int32_t id : *ids) streamed += decoder->Push(id);
  EXPECT_EQ(streamed + decoder->Flush(), "hi");
}

}  // namespace
}  // namespace doze

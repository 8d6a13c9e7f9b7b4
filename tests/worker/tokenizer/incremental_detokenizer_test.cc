// Streaming decode: never a broken character out, and always the same text as a full Decode.
#include "worker/tokenizer/incremental_detokenizer.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/worker/tokenizer/tokenizer_test_util.h"
#include "worker/tokenizer/byte_level.h"
#include "worker/tokenizer/utf8.h"

namespace doze {
namespace {

int32_t ByteId(unsigned char byte) {
  return *TestTokenizer().TokenToId(ByteLevel::Encode(std::string(1, static_cast<char>(byte))));
}

// Ids that spell `text` one byte per token, so that every multi-byte character is split across tokens.
std::vector<int32_t> ByteIds(const std::string& text) {
  std::vector<int32_t> ids;
  for (char c : text) ids.push_back(ByteId(static_cast<unsigned char>(c)));
  return ids;
}

// Streams `ids` and checks every delta is valid UTF-8 and that the deltas add up to Decode.
void ExpectStreamsLikeDecode(const std::vector<int32_t>& ids) {
  IncrementalDetokenizer detok(&TestTokenizer());
  std::string streamed;
  for (int32_t id : ids) {
    std::string delta = detok.Push(id);
    EXPECT_EQ(FindInvalidUtf8(delta), std::nullopt);
    streamed += delta;
  }
  streamed += detok.Flush();
  EXPECT_EQ(streamed, TestTokenizer().Decode(ids));
}

TEST(IncrementalDetokenizerTest, HoldsAChineseCharacterUntilComplete) {
  IncrementalDetokenizer detok(&TestTokenizer());
  EXPECT_EQ(detok.Push(ByteId(0xE4)), "");
  EXPECT_EQ(detok.Push(ByteId(0xBD)), "");
  EXPECT_EQ(detok.Push(ByteId(0xA0)), "你");
  EXPECT_EQ(detok.Flush(), "");
}

TEST(IncrementalDetokenizerTest, SplitCharactersMatchFullDecode) {
  for (const char* text : {"你好，世界", "😀 hi 👍🏽", "👩‍💻", "👨‍👩‍👧‍👦",
                           "🏳️‍🌈 flag", "é\u0301 mark", "한국어"}) {
    ExpectStreamsLikeDecode(ByteIds(text));
    ExpectStreamsLikeDecode(*TestTokenizer().Encode(text));
  }
}

TEST(IncrementalDetokenizerTest, FlushRendersAnIncompleteCharacter) {
  IncrementalDetokenizer detok(&TestTokenizer());
  EXPECT_EQ(detok.Push(9707), "Hello");
  EXPECT_EQ(detok.Push(ByteId(0xF0)), "");
  EXPECT_EQ(detok.Push(ByteId(0x9F)), "");
  EXPECT_EQ(detok.Flush(), "\ufffd");
  EXPECT_EQ(detok.Flush(), "");
}

TEST(IncrementalDetokenizerTest, BrokenBytesAreReplacedAsSoonAsTheyAreCertain) {
  IncrementalDetokenizer detok(&TestTokenizer());
  EXPECT_EQ(detok.Push(ByteId(0xE4)), "");
  EXPECT_EQ(detok.Push(9707), "\ufffdHello");
  EXPECT_EQ(detok.Push(ByteId(0x80)), "\ufffd");  // A lone continuation byte can never become valid.
  ExpectStreamsLikeDecode({ByteId(0xE4), ByteId(0xBD), 9707, ByteId(0xF0), ByteId(0x80), ByteId(0xA0)});
}

TEST(IncrementalDetokenizerTest, SkipsSpecialTokensWhenAsked) {
  IncrementalDetokenizer detok(&TestTokenizer(), /*skip_special_tokens=*/true);
  EXPECT_EQ(detok.Push(151645), "");
  EXPECT_EQ(detok.Push(151667), "<think>");
  IncrementalDetokenizer keep(&TestTokenizer());
  EXPECT_EQ(keep.Push(151645), "<|im_end|>");
}

}  // namespace
}  // namespace doze

// GPT-2's byte mapping and the UTF-8 helpers (strict validation, lossy decoding).
#include "worker/tokenizer/byte_level.h"

#include <string>

#include "gtest/gtest.h"
#include "worker/tokenizer/utf8.h"

namespace doze {
namespace {

TEST(ByteLevelTest, PrintableBytesStandForThemselves) {
  EXPECT_EQ(ByteLevel::ByteToChar('!'), U'!');
  EXPECT_EQ(ByteLevel::ByteToChar('~'), U'~');
  EXPECT_EQ(ByteLevel::ByteToChar(0xA1), U'\u00a1');
  EXPECT_EQ(ByteLevel::ByteToChar(0xFF), U'\u00ff');
}

TEST(ByteLevelTest, OtherBytesMapFromU0100InByteOrder) {
  EXPECT_EQ(ByteLevel::ByteToChar(0x00), U'\u0100');
  EXPECT_EQ(ByteLevel::ByteToChar('\n'), U'\u010a');  // "Ċ"
  EXPECT_EQ(ByteLevel::ByteToChar(' '), U'\u0120');   // "Ġ"
  EXPECT_EQ(ByteLevel::ByteToChar(0x7F), U'\u0121');
  EXPECT_EQ(ByteLevel::ByteToChar(0xA0), U'\u0142');
  EXPECT_EQ(ByteLevel::ByteToChar(0xAD), U'\u0143');
}

TEST(ByteLevelTest, MappingIsABijection) {
  for (int b = 0; b < 256; ++b) {
    auto back = ByteLevel::CharToByte(ByteLevel::ByteToChar(static_cast<unsigned char>(b)));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, b);
  }
  EXPECT_FALSE(ByteLevel::CharToByte(U'\u0144').has_value());
  EXPECT_FALSE(ByteLevel::CharToByte(U'中').has_value());
}

TEST(ByteLevelTest, EncodeAndDecode) {
  EXPECT_EQ(ByteLevel::Encode(" hi\n"), "\u0120hi\u010a");
  EXPECT_EQ(ByteLevel::Encode("你"), "\u00e4\u00bd\u0142");
  EXPECT_EQ(ByteLevel::Decode("\u00e4\u00bd\u0142"), "你");
  // A token with a character outside the byte alphabet decodes to its own bytes.
  EXPECT_EQ(ByteLevel::Decode("<think>中"), "<think>中");
}

TEST(Utf8Test, FindsTheFirstInvalidByte) {
  EXPECT_EQ(FindInvalidUtf8("plain 中文 😀"), std::nullopt);
  EXPECT_EQ(FindInvalidUtf8("ab\xff"), 2u);
  EXPECT_EQ(FindInvalidUtf8("abc\xe4\xb8"), 3u);       // Truncated.
  EXPECT_EQ(FindInvalidUtf8("\xc0\x80"), 0u);          // Overlong NUL.
  EXPECT_EQ(FindInvalidUtf8("x\xed\xa0\x80"), 1u);     // Surrogate U+D800.
  EXPECT_EQ(FindInvalidUtf8("\xf4\x90\x80\x80"), 0u);  // Above U+10FFFF.
  EXPECT_EQ(FindInvalidUtf8("\x80"), 0u);              // Lone continuation byte.
}

std::string Lossy(const std::string& bytes) {
  std::string out;
  AppendUtf8Lossy(bytes, /*final=*/true, &out);
  return out;
}

TEST(Utf8Test, LossyReplacesEachMaximalInvalidSubpart) {
  EXPECT_EQ(Lossy("a\xe4\xb8"
                  "b"),
            "a\ufffd"
            "b");                                          // One truncated sequence: one U+FFFD.
  EXPECT_EQ(Lossy("\xf0\x80\x80"), "\ufffd\ufffd\ufffd");  // F0 80 is never valid: each byte alone.
  EXPECT_EQ(Lossy("\xed\xa0\x80"), "\ufffd\ufffd\ufffd");  // Surrogates likewise.
  EXPECT_EQ(Lossy("\xc0\xaf"), "\ufffd\ufffd");
  EXPECT_EQ(Lossy("\xf0\x9f\x98"), "\ufffd");  // A truncated emoji.
  EXPECT_EQ(Lossy("ok 😀"), "ok 😀");
}

TEST(Utf8Test, LossyHoldsBackAnIncompleteTail) {
  std::string out;
  EXPECT_EQ(AppendUtf8Lossy("a\xf0\x9f\x98", /*final=*/false, &out), 1u);
  EXPECT_EQ(out, "a");
  out.clear();
  EXPECT_EQ(AppendUtf8Lossy("\xe4\x41", /*final=*/false, &out), 2u);  // Broken already: no reason to wait.
  EXPECT_EQ(out, "\ufffdA");
}

}  // namespace
}  // namespace doze

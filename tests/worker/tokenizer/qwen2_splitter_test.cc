// The Qwen2 split regex, case by case: each row is worked out by hand from the alternatives' order and their
// greedy, backtracking semantics.
#include "worker/tokenizer/qwen2_splitter.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace doze {
namespace {

std::vector<std::string> Pieces(const std::string& text) {
  std::vector<ByteRange> ranges;
  Qwen2Splitter::Split(text, &ranges);
  std::vector<std::string> pieces;
  for (const ByteRange& r : ranges) pieces.push_back(text.substr(r.begin, r.end - r.begin));
  return pieces;
}

struct SplitCase {
  const char* why;
  std::string text;
  std::vector<std::string> pieces;
};

TEST(Qwen2SplitterTest, HandComputedCases) {
  const std::vector<SplitCase> cases = {
      {"empty text", "", {}},
      {"a letter run keeps one leading space", "Hello world", {"Hello", " world"}},
      {"contraction after a word", "I'm here", {"I", "'m", " here"}},
      {"contractions ignore case", "IT'S DON'T WE'RE", {"IT", "'S", " DON", "'T", " WE", "'RE"}},
      {"mixed-case two-letter contractions", "we'Ve he'lL", {"we", "'Ve", " he", "'lL"}},
      {"long s folds to s", "it\u017f'\u017f", {"it\u017f", "'\u017f"}},
      {"a contraction needs no word boundary", "'sa", {"'s", "a"}},
      {"an apostrophe before other letters leads them", "'xyz", {"'xyz"}},
      {"Kelvin sign is no contraction", "'\u212a", {"'\u212a"}},
      {"two spaces: the last one leads the word", "a  b", {"a", " ", " b"}},
      {"spaces before a line break stay with it", "a   \n\nb", {"a", "   \n\n", "b"}},
      {"a run is cut after its last line break", "a \n b", {"a", " \n", " b"}},
      {"after a line break, spaces split again", "a\n  b", {"a", "\n", " ", " b"}},
      {"trailing white space is one piece", "x  ", {"x", "  "}},
      {"digits one by one", "123", {"1", "2", "3"}},
      {"a space before a digit stands alone", " 1", {" ", "1"}},
      {"punctuation takes the line breaks after it", "x!!!\n\ny", {"x", "!!!\n\n", "y"}},
      {"one space leads punctuation", " !? x", {" !?", " x"}},
      {"a tab leads a word", "\t\tabc", {"\t", "\tabc"}},
      {"no-break space is white space", "a\u00a0b", {"a", "\u00a0b"}},
      {"ideographic spaces", "x\u3000\u3000y", {"x", "\u3000", "\u3000y"}},
      {"zero-width space is not white space", "a\u200bb", {"a", "\u200bb"}},
      {"NEL is white space", "x\u0085y", {"x", "\u0085y"}},
      {"information separators are not white space", "a\x1c b", {"a", "\x1c", " b"}},
      {"CRLF runs", "a\r\n\r\nb", {"a", "\r\n\r\n", "b"}},
      {"vertical tab and form feed at the end", "x\v\f", {"x", "\v\f"}},
      {"line separator leads a word", "a\u2028b", {"a", "\u2028b"}},
      {"CJK is one letter run", "中文abc", {"中文abc"}},
      {"emoji are symbols", "hello😀😀 world", {"hello", "😀😀", " world"}},
      {"a combining mark is a symbol", "e\u0301x", {"e", "\u0301x"}},
      {"letter numbers and superscripts are numbers", "Ⅻ²3", {"Ⅻ", "²", "3"}},
      {"a symbol before digits stands alone", "$100", {"$", "1", "0", "0"}},
      {"an apostrophe before a line break", "'\n", {"'\n"}},
      {"a line break cannot lead a word", "\nabc", {"\n", "abc"}},
      {"a digit cannot lead a word", "1abc", {"1", "abc"}},
  };
  for (const SplitCase& c : cases)
    EXPECT_THAT(Pieces(c.text), ::testing::ElementsAreArray(c.pieces)) << c.why;
}

TEST(Qwen2SplitterTest, PiecesTileTheText) {
  std::string text = "Mixed 中文, emoji 👩‍💻, tabs\t\tand\r\nlines  \u3000 end ";
  std::string joined;
  for (const std::string& piece : Pieces(text)) {
    EXPECT_FALSE(piece.empty());
    joined += piece;
  }
  EXPECT_EQ(joined, text);
}

}  // namespace
}  // namespace doze

// The Qwen2 pre-tokenizer split, hand-written as a state machine over code points.
//
// Hugging Face applies Split(pattern, behavior=Isolated) with this Oniguruma regex:
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|
//   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// Every code point is a letter, a number, white space or something else, and some alternative matches each of
// them, so the matches tile the text and each piece is exactly one match. Matches are leftmost-first: at each
// position the first alternative that can match wins, with its greedy-and-backtracking length.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace doze {

// A byte range [begin, end) of a string.
struct ByteRange {
  uint32_t begin;
  uint32_t end;
};

// Splits text into the pieces Qwen2's pre-tokenizer regex matches.
class Qwen2Splitter {
 public:
  // Appends the consecutive matches of the regex in valid UTF-8 `text`, as byte ranges that tile it, to
  // `pieces`.
  static void Split(std::string_view text, std::vector<ByteRange>* pieces);
};

}  // namespace doze

// The Unicode properties the Qwen2 pre-tokenizer regex asks about, taken from utf8proc.
#pragma once

#include <cstdint>

namespace doze {

// Bit flags; a code point has at most one of kLetter, kNumber, kSpace (the Unicode properties are disjoint).
enum CharClass : uint8_t {
  kOther = 0,
  kLetter = 1,     // \p{L}: general category Lu, Ll, Lt, Lm or Lo.
  kNumber = 2,     // \p{N}: general category Nd, Nl or No.
  kSpace = 4,      // \s: Unicode White_Space, which is what Oniguruma's \s means for UTF-8 text.
  kLineBreak = 8,  // [\r\n]: only U+000D and U+000A; always set together with kSpace.
};

// Returns the class of `cp`; ASCII is served from a table built once from the same utf8proc properties.
uint8_t CharClassOf(char32_t cp);

}  // namespace doze

// UTF-8 helpers with the exact semantics the Hugging Face tokenizer (Rust) relies on: strict validation as
// `std::str::from_utf8` does, and lossy decoding that renders invalid bytes as `String::from_utf8_lossy`
// does.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace doze {

// Returns the byte offset of the first byte that does not start a valid UTF-8 sequence (overlong forms,
// surrogates and code points above U+10FFFF are invalid), or nullopt when `text` is valid.
std::optional<size_t> FindInvalidUtf8(std::string_view text);

// The length of the UTF-8 sequence a byte starts: 1 for ASCII, 2 to 4 for a lead byte, 0 for a byte that
// starts none (a continuation byte, C0, C1, F5-FF).
int Utf8SequenceLength(unsigned char lead);

// Decodes the code point starting at `*pos` of valid UTF-8 `text` and advances `*pos` past it.
inline char32_t NextCodePoint(std::string_view text, size_t* pos) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data()) + *pos;
  if (s[0] < 0x80) {
    *pos += 1;
    return s[0];
  }
  if (s[0] < 0xE0) {
    *pos += 2;
    return ((s[0] & 0x1F) << 6) | (s[1] & 0x3F);
  }
  if (s[0] < 0xF0) {
    *pos += 3;
    return ((s[0] & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
  }
  *pos += 4;
  return ((s[0] & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

// Appends the UTF-8 encoding of `cp` to `out`.
void AppendUtf8(char32_t cp, std::string* out);

// Appends `bytes` to `out` as text, each maximal invalid subpart replaced by one U+FFFD (the
// Unicode-recommended practice that Rust's from_utf8_lossy follows). When `final` is false, a trailing
// sequence that is incomplete but could still become valid is left unconsumed. Returns the number of bytes
// consumed.
size_t AppendUtf8Lossy(std::string_view bytes, bool final, std::string* out);

}  // namespace doze

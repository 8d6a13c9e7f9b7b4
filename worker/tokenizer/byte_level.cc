#include "worker/tokenizer/byte_level.h"

#include "worker/tokenizer/utf8.h"

namespace doze {

const ByteLevel::Tables& ByteLevel::Table() {
  static const Tables tables = [] {
    Tables t;
    t.char_to_byte.fill(-1);
    char32_t next_extra = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      char32_t ch = printable ? static_cast<char32_t>(b) : next_extra++;
      t.byte_to_char[b] = ch;
      t.char_to_byte[ch] = static_cast<int16_t>(b);
    }
    return t;
  }();
  return tables;
}

std::optional<unsigned char> ByteLevel::CharToByte(char32_t ch) {
  if (ch >= Table().char_to_byte.size() || Table().char_to_byte[ch] < 0) return std::nullopt;
  return static_cast<unsigned char>(Table().char_to_byte[ch]);
}

std::string ByteLevel::Encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char b : bytes) AppendUtf8(ByteToChar(static_cast<unsigned char>(b)), &out);
  return out;
}

std::string ByteLevel::Decode(std::string_view token) {
  std::string bytes;
  bytes.reserve(token.size());
  size_t pos = 0;
  while (pos < token.size()) {
    std::optional<unsigned char> byte = CharToByte(NextCodePoint(token, &pos));
    if (!byte.has_value()) return std::string(token);
    bytes.push_back(static_cast<char>(*byte));
  }
  return bytes;
}

}  // namespace doze

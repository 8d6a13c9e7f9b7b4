// GPT-2's byte-to-unicode table, which byte-level BPE vocabularies are written in: printable Latin-1 bytes
// stand for themselves and the other 68 bytes (controls, space, 0x7F-0xA0, 0xAD) for U+0100 upwards, in byte
// order.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace doze {

// The byte <-> character mapping of byte-level BPE.
class ByteLevel {
 public:
  // Returns the character that stands for `byte` in vocabulary strings.
  static char32_t ByteToChar(unsigned char byte) { return Table().byte_to_char[byte]; }

  // Returns the byte that `ch` stands for, or nullopt when `ch` is not one of the 256 byte characters.
  static std::optional<unsigned char> CharToByte(char32_t ch);

  // Returns the UTF-8 vocabulary spelling of raw bytes.
  static std::string Encode(std::string_view bytes);

  // Returns the raw bytes of a vocabulary string as the ByteLevel decoder does: every character mapped back
  // to its byte, or, when some character is not a byte character, the string's own UTF-8 bytes unchanged.
  static std::string Decode(std::string_view token);

 private:
  struct Tables {
    std::array<char32_t, 256> byte_to_char;
    std::array<int16_t, 324> char_to_byte;  // Index: the character; -1 when it stands for no byte.
  };
  static const Tables& Table();
};

}  // namespace doze

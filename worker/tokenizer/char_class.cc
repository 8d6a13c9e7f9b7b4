#include "worker/tokenizer/char_class.h"

#include <array>

#include "utf8proc.h"

namespace doze {
namespace {

// White_Space is the control characters U+0009..U+000D and U+0085 plus the separators (Zs, Zl, Zp);
// Oniguruma's \s for Unicode encodings is the same set. utf8proc has no White_Space flag, so the controls are
// named here.
bool IsWhiteSpace(char32_t cp, utf8proc_category_t category) {
  if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x85) return true;
  return category == UTF8PROC_CATEGORY_ZS || category == UTF8PROC_CATEGORY_ZL ||
         category == UTF8PROC_CATEGORY_ZP;
}

uint8_t ComputeCharClass(char32_t cp) {
  auto category = static_cast<utf8proc_category_t>(utf8proc_category(static_cast<utf8proc_int32_t>(cp)));
  switch (category) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return kLetter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return kNumber;
    default:
      break;
  }
  if (!IsWhiteSpace(cp, category)) return kOther;
  return (cp == '\r' || cp == '\n') ? (kSpace | kLineBreak) : kSpace;
}

std::array<uint8_t, 128> BuildAsciiTable() {
  std::array<uint8_t, 128> table{};
  for (char32_t cp = 0; cp < 128; ++cp) table[cp] = ComputeCharClass(cp);
  return table;
}

}  // namespace

uint8_t CharClassOf(char32_t cp) {
  static const std::array<uint8_t, 128> kAscii = BuildAsciiTable();
  return cp < 128 ? kAscii[cp] : ComputeCharClass(cp);
}

}  // namespace doze

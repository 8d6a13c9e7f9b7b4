#include "worker/tokenizer/utf8.h"

namespace doze {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// The length of the sequence `lead` starts and the allowed range of its second byte (which excludes overlong
// forms, surrogates and values above U+10FFFF); length 0 for a byte that cannot start a sequence.
struct LeadInfo {
  int length;
  unsigned char second_min;
  unsigned char second_max;
};

LeadInfo InfoOf(unsigned char lead) {
  if (lead < 0x80) return {1, 0, 0};
  if (lead < 0xC2) return {0, 0, 0};
  if (lead < 0xE0) return {2, 0x80, 0xBF};
  if (lead == 0xE0) return {3, 0xA0, 0xBF};
  if (lead == 0xED) return {3, 0x80, 0x9F};
  if (lead < 0xF0) return {3, 0x80, 0xBF};
  if (lead == 0xF0) return {4, 0x90, 0xBF};
  if (lead < 0xF4) return {4, 0x80, 0xBF};
  if (lead == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// How many bytes from `pos` belong to the (possibly truncated or broken) sequence there: equals the sequence
// length when it is complete and valid; otherwise the length of its maximal valid prefix (at least 1).
int ValidPrefixLength(std::string_view bytes, size_t pos, const LeadInfo& info) {
  int matched = 1;
  while (matched < info.length && pos + matched < bytes.size()) {
    auto b = static_cast<unsigned char>(bytes[pos + matched]);
    bool ok = matched == 1 ? (b >= info.second_min && b <= info.second_max) : (b >= 0x80 && b <= 0xBF);
    if (!ok) break;
    ++matched;
  }
  return matched;
}

}  // namespace

int Utf8SequenceLength(unsigned char lead) { return InfoOf(lead).length; }

std::optional<size_t> FindInvalidUtf8(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    auto lead = static_cast<unsigned char>(text[pos]);
    if (lead < 0x80) {
      ++pos;
      continue;
    }
    LeadInfo info = InfoOf(lead);
    if (info.length == 0 || ValidPrefixLength(text, pos, info) != info.length) return pos;
    pos += info.length;
  }
  return std::nullopt;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t AppendUtf8Lossy(std::string_view bytes, bool final, std::string* out) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    auto lead = static_cast<unsigned char>(bytes[pos]);
    if (lead < 0x80) {
      out->push_back(static_cast<char>(lead));
      ++pos;
      continue;
    }
    LeadInfo info = InfoOf(lead);
    if (info.length == 0) {
      out->append(kReplacement);
      ++pos;
      continue;
    }
    int matched = ValidPrefixLength(bytes, pos, info);
    if (matched == info.length) {
      out->append(bytes.substr(pos, matched));
    } else if (pos + matched == bytes.size() && !final) {
      return pos;  // Truncated: the next bytes may complete it.
    } else {
      out->append(kReplacement);
    }
    pos += matched;
  }
  return pos;
}

}  // namespace doze

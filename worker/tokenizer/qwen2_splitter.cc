#include "worker/tokenizer/qwen2_splitter.h"

#include "worker/tokenizer/char_class.h"
#include "worker/tokenizer/utf8.h"

namespace doze {
namespace {

// The text as code points, their classes, and byte offsets (offsets[n] is the text's length).
struct CodePoints {
  std::vector<char32_t> cps;
  std::vector<uint8_t> classes;
  std::vector<uint32_t> offsets;

  size_t size() const { return cps.size(); }
  bool Is(size_t i, uint8_t flag) const { return i < cps.size() && (classes[i] & flag) != 0; }
  // "Other" is what [^\s\p{L}\p{N}] matches.
  bool IsOther(size_t i) const { return i < cps.size() && classes[i] == kOther; }
};

CodePoints Decode(std::string_view text) {
  CodePoints text_cps;
  text_cps.cps.reserve(text.size());
  text_cps.classes.reserve(text.size());
  text_cps.offsets.reserve(text.size() + 1);
  size_t pos = 0;
  while (pos < text.size()) {
    text_cps.offsets.push_back(static_cast<uint32_t>(pos));
    char32_t cp = NextCodePoint(text, &pos);
    text_cps.cps.push_back(cp);
    text_cps.classes.push_back(CharClassOf(cp));
  }
  text_cps.offsets.push_back(static_cast<uint32_t>(text.size()));
  return text_cps;
}

// Case-insensitive equality with an ASCII lower-case letter, as Oniguruma folds case: besides the upper-case
// letter, U+017F LATIN SMALL LETTER LONG S folds to 's' (U+212A KELVIN SIGN folds to 'k', which no
// alternative has).
bool FoldsTo(char32_t cp, char lower) {
  if (cp == static_cast<char32_t>(lower) || cp == static_cast<char32_t>(lower - 'a' + 'A')) return true;
  return lower == 's' && cp == 0x017F;
}

// Alternative 1, (?i:'s|'t|'re|'ve|'m|'ll|'d): an apostrophe and a contraction suffix, any case.
size_t MatchContraction(const CodePoints& t, size_t i) {
  if (t.cps[i] != '\'' || i + 1 >= t.size()) return 0;
  char32_t c1 = t.cps[i + 1];
  if (FoldsTo(c1, 's') || FoldsTo(c1, 't') || FoldsTo(c1, 'm') || FoldsTo(c1, 'd')) return 2;
  if (i + 2 >= t.size()) return 0;
  char32_t c2 = t.cps[i + 2];
  if ((FoldsTo(c1, 'r') || FoldsTo(c1, 'v')) && FoldsTo(c2, 'e')) return 3;
  if (FoldsTo(c1, 'l') && FoldsTo(c2, 'l')) return 3;
  return 0;
}

size_t RunEnd(const CodePoints& t, size_t j, uint8_t flag) {
  while (t.Is(j, flag)) ++j;
  return j;
}

// Alternative 2, [^\r\n\p{L}\p{N}]?\p{L}+: a letter run, optionally led by one character that is neither a
// line break, a letter nor a number (a space, punctuation, a mark...). Backtracking cannot shorten the greedy
// run.
size_t MatchLetters(const CodePoints& t, size_t i) {
  if (t.Is(i, kLetter)) return RunEnd(t, i + 1, kLetter) - i;
  if (t.Is(i, kLineBreak | kNumber) || !t.Is(i + 1, kLetter)) return 0;
  return RunEnd(t, i + 2, kLetter) - i;
}

size_t OtherRunEnd(const CodePoints& t, size_t j) {
  while (t.IsOther(j)) ++j;
  return j;
}

// Alternative 4, ` ?[^\s\p{L}\p{N}]+[\r\n]*`: an optional U+0020, a run of "other" characters, then any line
// breaks. If the space is not followed by an "other" character the match fails (the space itself is \s).
size_t MatchSymbols(const CodePoints& t, size_t i) {
  size_t j = i;
  if (t.cps[i] == ' ' && t.IsOther(i + 1)) ++j;
  if (!t.IsOther(j)) return 0;
  j = OtherRunEnd(t, j + 1);
  return RunEnd(t, j, kLineBreak) - i;
}

// Alternatives 5 to 7 on a white-space run [i, end):
//   \s*[\r\n]+ : \s* gives back characters until a line break follows, so the match ends just after the run's
//                last \r or \n;
//   \s+(?!\S)  : at the end of the text the whole run; before a non-space the run less its last character
//   (which
//                is left to lead the next piece), when that leaves at least one;
//   \s+        : otherwise the single white-space character before the non-space.
size_t MatchSpaces(const CodePoints& t, size_t i) {
  size_t end = RunEnd(t, i, kSpace);
  for (size_t k = end; k > i; --k) {
    if (t.Is(k - 1, kLineBreak)) return k - i;
  }
  if (end == t.size()) return end - i;
  if (end - i >= 2) return end - 1 - i;
  return end - i;
}

// The length, in code points, of the regex's match at `i`; never zero.
size_t MatchAt(const CodePoints& t, size_t i) {
  if (size_t n = MatchContraction(t, i)) return n;
  if (size_t n = MatchLetters(t, i)) return n;
  if (t.Is(i, kNumber)) return 1;  // Alternative 3, \p{N}: one number character at a time.
  if (size_t n = MatchSymbols(t, i)) return n;
  return MatchSpaces(t, i);
}

}  // namespace

void Qwen2Splitter::Split(std::string_view text, std::vector<ByteRange>* pieces) {
  CodePoints t = Decode(text);
  size_t i = 0;
  while (i < t.size()) {
    size_t end = i + MatchAt(t, i);
    pieces->push_back({t.offsets[i], t.offsets[end]});
    i = end;
  }
}

}  // namespace doze

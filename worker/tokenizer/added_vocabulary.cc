#include "worker/tokenizer/added_vocabulary.h"

#include <algorithm>

#include "worker/tokenizer/char_class.h"
#include "worker/tokenizer/utf8.h"

namespace doze {
namespace {

// The start of the code point that ends just before `pos` in valid UTF-8 `text` (pos > 0).
size_t PrevCodePointStart(std::string_view text, size_t pos) {
  do {
    --pos;
  } while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80);
  return pos;
}

uint8_t ClassAt(std::string_view text, size_t pos) { return CharClassOf(NextCodePoint(text, &pos)); }

// HF strips with Rust's char::is_whitespace, which is the White_Space property.
size_t SpacesBefore(std::string_view text, size_t end) {
  size_t begin = end;
  while (begin > 0) {
    size_t prev = PrevCodePointStart(text, begin);
    if (!(ClassAt(text, prev) & kSpace)) break;
    begin = prev;
  }
  return begin;
}

size_t SpacesAfter(std::string_view text, size_t begin) {
  size_t end = begin;
  while (end < text.size()) {
    size_t next = end;
    if (!(CharClassOf(NextCodePoint(text, &next)) & kSpace)) break;
    end = next;
  }
  return end;
}

}  // namespace

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens,
                                 const std::vector<std::string>& normalized_contents)
    : tokens_(std::move(tokens)) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& token = tokens_[i];
    index_by_id_[token.id] = i;
    id_by_content_.try_emplace(token.content, token.id);
    const std::string& text = token.normalized ? normalized_contents[i] : token.content;
    if (text.empty()) continue;
    for (bool match_special : {false, true}) {
      if (token.special && !match_special) continue;
      Matcher& matcher = matchers_[token.normalized][match_special];
      matcher.by_first_byte[static_cast<unsigned char>(text[0])].push_back({text, i});
    }
  }
  for (auto& pass : matchers_) {
    for (Matcher& matcher : pass) {
      for (auto& bucket : matcher.by_first_byte) {
        std::stable_sort(bucket.begin(), bucket.end(),
                         [](const Pattern& a, const Pattern& b) { return a.text.size() > b.text.size(); });
      }
    }
  }
}

std::optional<std::pair<size_t, size_t>> AddedVocabulary::LongestAt(const Matcher& matcher,
                                                                    std::string_view text, size_t pos) {
  for (const Pattern& pattern : matcher.by_first_byte[static_cast<unsigned char>(text[pos])]) {
    if (text.substr(pos, pattern.text.size()) == pattern.text) {
      return std::make_pair(pattern.token_index, pattern.text.size());
    }
  }
  return std::nullopt;
}

// HF tests the neighbours with Rust's char::is_alphanumeric; letters and numbers (\p{L}, \p{N}) stand in for
// it.
bool AddedVocabulary::IsWholeWord(std::string_view text, size_t begin, size_t end) {
  bool word_before = begin > 0 && (ClassAt(text, PrevCodePointStart(text, begin)) & (kLetter | kNumber));
  bool word_after = end < text.size() && (ClassAt(text, end) & (kLetter | kNumber));
  return !word_before && !word_after;
}

void AddedVocabulary::Split(std::string_view text, bool normalized_pass, bool match_special,
                            std::vector<TextSegment>* segments) const {
  const Matcher& matcher = matchers_[normalized_pass][match_special];
  size_t plain_begin = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (matcher.by_first_byte[static_cast<unsigned char>(text[pos])].empty()) {
      ++pos;  // The common case, kept free of calls: no added token starts with this byte.
      continue;
    }
    auto match = LongestAt(matcher, text, pos);
    if (!match) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[match->first];
    size_t begin = pos;
    size_t end = pos + match->second;
    pos = end;  // The search resumes after the match itself, whatever stripping or rejection follows.
    if (token.single_word && !IsWholeWord(text, begin, end)) continue;
    if (token.lstrip) begin = std::max(SpacesBefore(text, begin), plain_begin);
    if (token.rstrip) end = SpacesAfter(text, end);
    if (plain_begin < begin) {
      segments->push_back({{static_cast<uint32_t>(plain_begin), static_cast<uint32_t>(begin)}, -1});
    }
    segments->push_back({{static_cast<uint32_t>(begin), static_cast<uint32_t>(end)}, token.id});
    plain_begin = end;
  }
  if (plain_begin < text.size()) {
    segments->push_back({{static_cast<uint32_t>(plain_begin), static_cast<uint32_t>(text.size())}, -1});
  }
}

const AddedToken* AddedVocabulary::FindById(int32_t id) const {
  auto it = index_by_id_.find(id);
  return it == index_by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int32_t> AddedVocabulary::TokenToId(std::string_view content) const {
  auto it = id_by_content_.find(absl::string_view(content.data(), content.size()));
  if (it == id_by_content_.end()) return std::nullopt;
  return it->second;
}

}  // namespace doze

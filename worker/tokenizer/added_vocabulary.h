// The added tokens of a Hugging Face tokenizer (`added_tokens` in tokenizer.json) and how they cut text.
//
// HF matches them before the model sees the text: tokens with normalized=false in the raw text, then tokens
// with normalized=true in each normalized remaining piece. Matching is leftmost-longest over all tokens of
// the pass; a match is dropped when single_word is set and a letter or digit touches it; lstrip and rstrip
// widen a match over the white space beside it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "worker/tokenizer/qwen2_splitter.h"

namespace doze {

// One entry of tokenizer.json's `added_tokens`.
struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

// A piece of text: either plain text (token_id < 0) or the span an added token took.
struct TextSegment {
  ByteRange range;
  int32_t token_id;
};

// The set of added tokens and their matcher.
class AddedVocabulary {
 public:
  // `normalized_contents[i]` is tokens[i].content after the tokenizer's normalizer (used when normalized is
  // set).
  AddedVocabulary(std::vector<AddedToken> tokens, const std::vector<std::string>& normalized_contents);

  // Cuts valid UTF-8 `text` into plain segments and added-token segments, matching only the tokens whose
  // `normalized` flag equals `normalized_pass`, and special tokens only with `match_special` (without it
  // their text stays plain, as HF's split_special_tokens leaves it). Segments tile the text in order.
  void Split(std::string_view text, bool normalized_pass, bool match_special,
             std::vector<TextSegment>* segments) const;

  // Returns the added token with this id, or nullptr.
  const AddedToken* FindById(int32_t id) const;

  // Returns the id of the added token with this content.
  std::optional<int32_t> TokenToId(std::string_view content) const;

  // Returns all added tokens, in file order.
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // One way to match a token: the string looked for and the token's index in tokens_.
  struct Pattern {
    std::string text;
    size_t token_index;
  };
  // Patterns of one pass, bucketed by first byte and sorted longest first, so the first hit is the longest.
  struct Matcher {
    std::array<std::vector<Pattern>, 256> by_first_byte;
  };

  // Returns the token index and length of the longest pattern starting at `pos`.
  static std::optional<std::pair<size_t, size_t>> LongestAt(const Matcher& matcher, std::string_view text,
                                                            size_t pos);
  // Whether a single_word token may stand at [begin, end) of `text`.
  static bool IsWholeWord(std::string_view text, size_t begin, size_t end);

  std::vector<AddedToken> tokens_;
  // Indexed [normalized][match_special]: the matcher of each pass, with and without the special tokens.
  Matcher matchers_[2][2];
  absl::flat_hash_map<int32_t, size_t> index_by_id_;
  absl::flat_hash_map<std::string, int32_t> id_by_content_;
};

}  // namespace doze

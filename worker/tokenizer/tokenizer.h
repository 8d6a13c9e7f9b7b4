// A byte-level BPE tokenizer that reproduces Hugging Face `tokenizers` for Qwen2-family tokenizer.json files:
// added tokens matched in the raw text, NFC, the Qwen2 split regex, GPT-2's byte mapping, BPE merges by rank;
// decoding through the ByteLevel decoder with invalid UTF-8 rendered as U+FFFD.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/tokenizer/added_vocabulary.h"
#include "worker/tokenizer/bpe_model.h"

namespace doze {

// Whether Encode turns the text of a special added token ("<|im_end|>") into that token, as HF's encode does,
// or encodes it as the characters it is (HF's split_special_tokens), for text from users.
enum class SpecialTokens { kParse, kAsText };

// Encodes text to ids and back. Immutable after loading except for an internal word cache; thread-safe.
class Tokenizer {
 public:
  // Loads a tokenizer.json; fails on a missing file, bad JSON, or a model, normalizer, pre-tokenizer or
  // decoder other than the Qwen2 ones (BPE, NFC, Split+ByteLevel, ByteLevel).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromFile(const std::string& path);

  // Returns the ids of `text` as HF's encode(text, add_special_tokens=False) would (with kAsText, as it would
  // with split_special_tokens=True); InvalidArgument, naming the byte offset, when `text` is not valid UTF-8.
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                              SpecialTokens special = SpecialTokens::kParse) const;

  // Returns the text of `ids` as HF's decode would: unknown ids are dropped, special tokens too when asked,
  // and bytes that do not form valid UTF-8 become U+FFFD.
  std::string Decode(absl::Span<const int32_t> ids, bool skip_special_tokens = false) const;

  // Returns the id of a token given as an added token's content or a vocabulary entry's byte-level spelling.
  std::optional<int32_t> TokenToId(std::string_view token) const;

  // Returns the largest id plus one.
  int vocab_size() const { return static_cast<int>(token_bytes_.size()); }

  // Returns whether `id` is an added token marked special (skipped by Decode when asked).
  bool IsSpecial(int32_t id) const;

  // Returns the raw bytes `id` decodes to (possibly part of a UTF-8 character); empty for an unknown id.
  std::string_view TokenBytes(int32_t id) const;

  // Returns whether `id` names a token of the vocabulary or an added token.
  bool IsKnown(int32_t id) const { return id >= 0 && id < vocab_size() && known_[id]; }

 private:
  Tokenizer(std::unique_ptr<BpeModel> model, std::unique_ptr<AddedVocabulary> added);
  // Appends the ids of plain (non-added-token) raw text: normalize, cut at normalized added tokens, split,
  // BPE.
  void EncodePlain(std::string_view raw, bool match_special, std::vector<int32_t>* ids) const;
  // Appends the ids of normalized text with no added token in it.
  void EncodeWords(std::string_view text, std::vector<int32_t>* ids) const;

  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<AddedVocabulary> added_;
  std::vector<std::string> token_bytes_;  // Index: id.
  std::vector<bool> known_;               // Index: id.
  std::vector<bool> special_;             // Index: id.
  bool nfc_ = false;                      // Whether the normalizer is NFC.
};

}  // namespace doze

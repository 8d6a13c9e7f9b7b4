#include "worker/tokenizer/tokenizer.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "utf8proc.h"
#include "worker/common/file_util.h"
#include "worker/common/status_macros.h"
#include "worker/tokenizer/byte_level.h"
#include "worker/tokenizer/qwen2_splitter.h"
#include "worker/tokenizer/tokenizer_json.h"
#include "worker/tokenizer/utf8.h"

namespace doze {
namespace {

bool IsAscii(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// NFC of valid UTF-8 text through utf8proc. ASCII text is its own NFC and skips the copy.
std::string_view Nfc(std::string_view text, std::string* storage) {
  if (IsAscii(text)) return text;
  utf8proc_uint8_t* result = nullptr;
  utf8proc_ssize_t length = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                         static_cast<utf8proc_ssize_t>(text.size()), &result,
                                         static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (length < 0) return text;  // Unreachable for valid UTF-8; leaving the text as it is is the safe answer.
  storage->assign(reinterpret_cast<const char*>(result), static_cast<size_t>(length));
  std::free(result);
  return *storage;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  absl::StatusOr<TokenizerJson> parsed = ParseTokenizerJson(text);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(), absl::StrCat(path, ": ", parsed.status().message()));
  }
  std::vector<std::string> normalized_contents;
  for (const AddedToken& token : parsed->added_tokens) {
    std::string storage;
    normalized_contents.emplace_back(parsed->nfc ? Nfc(token.content, &storage) : token.content);
  }
  auto added = std::make_unique<AddedVocabulary>(std::move(parsed->added_tokens), normalized_contents);
  absl::StatusOr<std::unique_ptr<BpeModel>> model =
      BpeModel::Create(std::move(parsed->vocab), parsed->merges);
  if (!model.ok())
    return absl::Status(model.status().code(), absl::StrCat(path, ": ", model.status().message()));
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer(*std::move(model), std::move(added)));
  tokenizer->nfc_ = parsed->nfc;
  return tokenizer;
}

Tokenizer::Tokenizer(std::unique_ptr<BpeModel> model, std::unique_ptr<AddedVocabulary> added)
    : model_(std::move(model)), added_(std::move(added)) {
  int32_t max_id = -1;
  for (const auto& [token, id] : model_->vocab()) max_id = std::max(max_id, id);
  for (const AddedToken& token : added_->tokens()) max_id = std::max(max_id, token.id);
  token_bytes_.resize(static_cast<size_t>(max_id + 1));
  known_.assign(token_bytes_.size(), false);
  special_.assign(token_bytes_.size(), false);
  for (const auto& [token, id] : model_->vocab()) {
    if (id < 0) continue;
    token_bytes_[id] = ByteLevel::Decode(token);
    known_[id] = true;
  }
  // An added token's id maps to its content even where the model has the same id, as in HF's id_to_token.
  for (const AddedToken& token : added_->tokens()) {
    if (token.id < 0) continue;
    token_bytes_[token.id] = ByteLevel::Decode(token.content);
    known_[token.id] = true;
    special_[token.id] = token.special;
  }
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text, SpecialTokens special) const {
  if (std::optional<size_t> offset = FindInvalidUtf8(text)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid UTF-8 at byte offset ", *offset));
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  const bool match_special = special == SpecialTokens::kParse;
  std::vector<TextSegment> segments;
  added_->Split(text, /*normalized_pass=*/false, match_special, &segments);
  for (const TextSegment& segment : segments) {
    if (segment.token_id >= 0) {
      ids.push_back(segment.token_id);
    } else {
      EncodePlain(text.substr(segment.range.begin, segment.range.end - segment.range.begin), match_special,
                  &ids);
    }
  }
  return ids;
}

void Tokenizer::EncodePlain(std::string_view raw, bool match_special, std::vector<int32_t>* ids) const {
  std::string storage;
  std::string_view text = nfc_ ? Nfc(raw, &storage) : raw;
  std::vector<TextSegment> segments;
  added_->Split(text, /*normalized_pass=*/true, match_special, &segments);
  for (const TextSegment& segment : segments) {
    if (segment.token_id >= 0) {
      ids->push_back(segment.token_id);
    } else {
      EncodeWords(text.substr(segment.range.begin, segment.range.end - segment.range.begin), ids);
    }
  }
}

void Tokenizer::EncodeWords(std::string_view text, std::vector<int32_t>* ids) const {
  std::vector<ByteRange> words;
  Qwen2Splitter::Split(text, &words);
  for (const ByteRange& word : words) {
    model_->EncodeWord(text.substr(word.begin, word.end - word.begin), ids);
  }
}

std::string Tokenizer::Decode(absl::Span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (!IsKnown(id) || (skip_special_tokens && special_[id])) continue;
    bytes.append(token_bytes_[id]);
  }
  std::string text;
  text.reserve(bytes.size());
  AppendUtf8Lossy(bytes, /*final=*/true, &text);
  return text;
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  if (std::optional<int32_t> id = added_->TokenToId(token)) return id;
  return model_->TokenToId(token);
}

bool Tokenizer::IsSpecial(int32_t id) const { return IsKnown(id) && special_[id]; }

std::string_view Tokenizer::TokenBytes(int32_t id) const {
  return IsKnown(id) ? std::string_view(token_bytes_[id]) : std::string_view();
}

}  // namespace doze

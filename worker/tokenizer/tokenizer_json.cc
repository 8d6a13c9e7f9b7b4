#include "worker/tokenizer/tokenizer_json.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "worker/common/json_util.h"
#include "worker/common/status_macros.h"

namespace doze {
namespace {

using nlohmann::json;

// The only split pattern implemented (by Qwen2Splitter).
constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

absl::Status Unsupported(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": unsupported ", what));
}

// Token ids are small non-negative integers (the largest vocabularies hold a few hundred thousand); the
// tokenizer keeps a table indexed by id, so an id is bounded before anything is sized by it.
constexpr int64_t kMaxTokenId = (int64_t{1} << 22) - 1;

// Reads a token id at `path`: an integer in [0, kMaxTokenId].
absl::StatusOr<int32_t> TokenId(const json& id, const std::string& path) {
  if (!id.is_number_integer()) return Unsupported(path, "id (not an integer)");
  if (id.is_number_unsigned() ? id.get<uint64_t>() > static_cast<uint64_t>(kMaxTokenId)
                              : id.get<int64_t>() < 0 || id.get<int64_t>() > kMaxTokenId) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": id ", DescribeJson(id), " is outside [0, ", kMaxTokenId, "]"));
  }
  return static_cast<int32_t>(id.get<int64_t>());
}

// The member `key` of `object`, or null when absent (operator[] on a const object must not be given a missing
// key).
const json& Get(const json& object, const char* key) {
  static const json kNull;
  return object.is_object() && object.contains(key) ? object[key] : kNull;
}

bool IsFalse(const json& object, const char* key) {
  return !object.contains(key) || object[key].is_null() || object[key] == false;
}

bool IsEmptyString(const json& object, const char* key) {
  return !object.contains(key) || object[key].is_null() || object[key] == "";
}

// The ByteLevel pre-tokenizer's use_regex defaults to true, so it must be present and false.
bool IsPlainByteLevel(const json& node) {
  return node.is_object() && node.value("type", "") == "ByteLevel" && IsFalse(node, "add_prefix_space") &&
         Get(node, "use_regex") == false;
}

absl::Status CheckNormalizer(const json& root, TokenizerJson* out) {
  const json& normalizer = Get(root, "normalizer");
  if (normalizer.is_null()) return absl::OkStatus();
  if (!normalizer.is_object() || normalizer.value("type", "") != "NFC")
    return Unsupported("normalizer", "type");
  out->nfc = true;
  return absl::OkStatus();
}

absl::Status CheckPreTokenizer(const json& root) {
  const json& pre = Get(root, "pre_tokenizer");
  const json& steps = Get(pre, "pretokenizers");
  if (Get(pre, "type") != "Sequence" || !steps.is_array() || steps.size() != 2) {
    return Unsupported("pre_tokenizer", "pre-tokenizer (want Sequence[Split, ByteLevel])");
  }
  const json& split = steps[0];
  if (Get(split, "type") != "Split" || Get(split, "behavior") != "Isolated" || !IsFalse(split, "invert") ||
      Get(Get(split, "pattern"), "Regex") != std::string(kQwen2Pattern)) {
    return Unsupported("pre_tokenizer.pretokenizers[0]", "split (want the Qwen2 regex, Isolated)");
  }
  if (!IsPlainByteLevel(steps[1])) {
    return Unsupported("pre_tokenizer.pretokenizers[1]", "byte-level settings");
  }
  return absl::OkStatus();
}

absl::Status ReadModel(const json& root, TokenizerJson* out) {
  const json& model = Get(root, "model");
  if (!model.is_object() || model.value("type", "BPE") != "BPE") return Unsupported("model", "type");
  if (!Get(model, "dropout").is_null()) return Unsupported("model.dropout", "value");
  if (!IsFalse(model, "byte_fallback") || !IsFalse(model, "ignore_merges") ||
      !IsEmptyString(model, "unk_token") || !IsEmptyString(model, "continuing_subword_prefix") ||
      !IsEmptyString(model, "end_of_word_suffix")) {
    return Unsupported("model", "BPE option (byte_fallback, ignore_merges, unk_token or affixes)");
  }
  if (!Get(model, "vocab").is_object()) return Unsupported("model.vocab", "type");
  out->vocab.reserve(model["vocab"].size());
  for (const auto& [token, id] : model["vocab"].items()) {
    ASSIGN_OR_RETURN(out->vocab[token], TokenId(id, absl::StrCat("model.vocab.", token)));
  }
  if (!Get(model, "merges").is_array()) return Unsupported("model.merges", "type");
  out->merges.reserve(model["merges"].size());
  for (size_t i = 0; i < model["merges"].size(); ++i) {
    const json& merge = model["merges"][i];
    if (merge.is_string()) {
      const std::string& text = merge.get_ref<const std::string&>();
      size_t space = text.find(' ');
      if (space == std::string::npos) return Unsupported(absl::StrCat("model.merges[", i, "]"), "merge");
      out->merges.emplace_back(text.substr(0, space), text.substr(space + 1));
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      out->merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
    } else {
      return Unsupported(absl::StrCat("model.merges[", i, "]"), "merge");
    }
  }
  return absl::OkStatus();
}

absl::Status ReadAddedTokens(const json& root, TokenizerJson* out) {
  if (!root.contains("added_tokens") || root["added_tokens"].is_null()) return absl::OkStatus();
  if (!root["added_tokens"].is_array()) return Unsupported("added_tokens", "type");
  for (size_t i = 0; i < root["added_tokens"].size(); ++i) {
    const json& entry = root["added_tokens"][i];
    if (!Get(entry, "content").is_string())
      return Unsupported(absl::StrCat("added_tokens[", i, "]"), "entry");
    AddedToken token;
    ASSIGN_OR_RETURN(token.id, TokenId(Get(entry, "id"), absl::StrCat("added_tokens[", i, "].id")));
    token.content = entry["content"].get<std::string>();
    token.special = entry.value("special", false);
    token.single_word = entry.value("single_word", false);
    token.lstrip = entry.value("lstrip", false);
    token.rstrip = entry.value("rstrip", false);
    token.normalized = entry.value("normalized", !token.special);
    out->added_tokens.push_back(std::move(token));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TokenizerJson> ParseTokenizerJson(std::string_view json_text) {
  ASSIGN_OR_RETURN(json root, ParseJsonObject(json_text));
  TokenizerJson out;
  RETURN_IF_ERROR(CheckNormalizer(root, &out));
  RETURN_IF_ERROR(CheckPreTokenizer(root));
  if (Get(Get(root, "decoder"), "type") != "ByteLevel") {
    return Unsupported("decoder", "decoder (want ByteLevel)");
  }
  RETURN_IF_ERROR(ReadModel(root, &out));
  RETURN_IF_ERROR(ReadAddedTokens(root, &out));
  return out;
}

}  // namespace doze

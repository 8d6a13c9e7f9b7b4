#include "worker/common/json_util.h"

#include "absl/strings/str_cat.h"

namespace doze {
namespace {

using Json = nlohmann::json;

constexpr size_t kMaxShown = 80;
constexpr size_t kMaxFlatItems = 8;

// A flat array or object: no member is itself an array or an object, so dump() does not recurse.
bool IsSmallAndFlat(const Json& value) {
  if (value.size() > kMaxFlatItems) return false;
  for (const Json& item : value) {
    if (item.is_structured()) return false;
  }
  return true;
}

std::string Shortened(std::string text) {
  if (text.size() <= kMaxShown) return text;
  text.resize(kMaxShown);
  return text + "...";
}

}  // namespace

absl::StatusOr<Json> ParseJsonObject(std::string_view text) {
  Json value = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    // Parsed again for the error's position: nlohmann reports it only through the exception.
    try {
      value = Json::parse(text.begin(), text.end());
    } catch (const Json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("not valid JSON: ", e.what()));
    }
    return absl::InvalidArgumentError("not valid JSON");
  }
  if (!value.is_object()) return absl::InvalidArgumentError("not a JSON object");
  return value;
}

std::string DescribeJson(const Json& value) {
  if (!value.is_structured() || IsSmallAndFlat(value)) return Shortened(value.dump());
  return value.is_array() ? absl::StrCat("an array of ", value.size(), " items")
                          : absl::StrCat("an object of ", value.size(), " keys");
}

}  // namespace doze

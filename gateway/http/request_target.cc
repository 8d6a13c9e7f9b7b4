#include "gateway/http/request_target.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace doze::gateway {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  return absl::ascii_tolower(static_cast<unsigned char>(c)) - 'a' + 10;
}

// Decodes every %XX of `path`.
absl::StatusOr<std::string> PercentDecoded(absl::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '%') {
      out.push_back(path[i]);
      continue;
    }
    if (i + 2 >= path.size() || !absl::ascii_isxdigit(static_cast<unsigned char>(path[i + 1])) ||
        !absl::ascii_isxdigit(static_cast<unsigned char>(path[i + 2]))) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed percent-encoding in the request path at \"", path.substr(i, 3), "\""));
    }
    const char c = static_cast<char>(16 * HexValue(path[i + 1]) + HexValue(path[i + 2]));
    if (c == '\0') return absl::InvalidArgumentError("the request path holds an encoded NUL byte");
    out.push_back(c);
    i += 2;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> RequestPath(absl::string_view target) {
  for (absl::string_view scheme : {"http://", "https://"}) {
    if (!absl::StartsWithIgnoreCase(target, scheme)) continue;
    const size_t path = target.find('/', scheme.size());
    target = path == absl::string_view::npos ? "/" : target.substr(path);
    break;
  }
  return PercentDecoded(target.substr(0, target.find('?')));
}

}  // namespace doze::gateway

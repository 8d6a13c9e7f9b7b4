// The path a request's target routes by.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace doze::gateway {

// `target`'s path: the scheme and authority of the absolute form a proxy sends dropped (RFC 9112 3.2.2), the
// query dropped, and percent-encoded octets decoded (RFC 3986 2.1), so that "/v1/%6Dodels" routes as
// "/v1/models" (as nginx matches its locations). InvalidArgument for a '%' not followed by two hex digits
// and for an encoded NUL.
absl::StatusOr<std::string> RequestPath(absl::string_view target);

}  // namespace doze::gateway

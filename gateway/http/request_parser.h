// Parses one HTTP/1.1 request held in memory with Beast's parser under the server's limits: the same parser
// and limits a session uses, exposed for the fuzz target and for tests. The session's rules on a parsed
// header (Host required in HTTP/1.1, no transfer coding but chunked) are not applied here.
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "gateway/http/http_server.h"
#include "gateway/http/http_types.h"

namespace doze::gateway {

// Returns the request in `bytes`; InvalidArgument with HTTP status 400, 413 or 431 attached when it is
// malformed, its body is over the limit, or its header is; OutOfRange when `bytes` ends before the request.
absl::StatusOr<HttpRequest> ParseHttpRequest(std::string_view bytes, const HttpLimits& limits);

}  // namespace doze::gateway

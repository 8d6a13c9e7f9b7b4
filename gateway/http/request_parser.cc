#include "gateway/http/request_parser.h"

#include "absl/strings/str_cat.h"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "gateway/http/request_target.h"
#include "gateway/openai/api_error.h"

namespace doze::gateway {

namespace http = boost::beast::http;

absl::StatusOr<HttpRequest> ParseHttpRequest(std::string_view bytes, const HttpLimits& limits) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(static_cast<uint32_t>(limits.max_header_bytes));
  parser.body_limit(static_cast<uint64_t>(limits.max_body_bytes));
  parser.eager(true);
  boost::beast::error_code error;
  size_t offset = 0;
  while (offset < bytes.size() && !parser.is_done()) {
    size_t used = parser.put(boost::asio::buffer(bytes.data() + offset, bytes.size() - offset), error);
    if (error == http::error::need_more) break;
    if (error) break;
    if (used == 0) break;
    offset += used;
  }
  if (!error && !parser.is_done()) {
    parser.put_eof(error);
    if (!error && !parser.is_done()) return absl::OutOfRangeError("the request is incomplete");
  }
  if (error == http::error::header_limit)
    return WithHttpStatus(absl::InvalidArgumentError("header too large"), 431);
  if (error == http::error::body_limit)
    return WithHttpStatus(absl::InvalidArgumentError("body too large"), 413);
  if (error == http::error::need_more || error == http::error::partial_message) {
    return absl::OutOfRangeError("the request is incomplete");
  }
  if (error) return absl::InvalidArgumentError(absl::StrCat("malformed HTTP request: ", error.message()));
  http::request<http::string_body> message = parser.release();
  HttpRequest request;
  request.method = std::string(message.method_string());
  absl::StatusOr<std::string> path =
      RequestPath(absl::string_view(message.target().data(), message.target().size()));
  if (!path.ok()) return WithHttpStatus(path.status(), 400);
  request.path = *std::move(path);
  request.authorization = std::string(message[http::field::authorization]);
  request.body = std::move(message.body());
  return request;
}

}  // namespace doze::gateway

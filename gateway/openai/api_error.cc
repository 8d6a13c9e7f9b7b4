#include "gateway/openai/api_error.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace doze::gateway {
namespace {

constexpr char kParamUrl[] = "doze.dev/param";
constexpr char kCodeUrl[] = "doze.dev/code";
constexpr char kHttpStatusUrl[] = "doze.dev/http_status";
constexpr char kRetryAfterUrl[] = "doze.dev/retry_after_s";

absl::Status WithPayload(absl::Status status, const char* url, std::string_view value) {
  status.SetPayload(url, absl::Cord(std::string(value)));
  return status;
}

std::optional<std::string> Payload(const absl::Status& status, const char* url) {
  absl::optional<absl::Cord> value = status.GetPayload(url);
  if (!value.has_value()) return std::nullopt;
  return std::string(*value);
}

// OpenAI's "type" for each class of error.
const char* ErrorType(int http_status) {
  switch (http_status) {
    case 400:
    case 404:
    case 405:
    case 409:
    case 413:
    case 415:
    case 431:
    case 501:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 429:
      return "rate_limit_error";
    default:
      return "server_error";
  }
}

}  // namespace

absl::Status WithParam(absl::Status status, std::string_view param) {
  return WithPayload(std::move(status), kParamUrl, param);
}

absl::Status WithCode(absl::Status status, std::string_view code) {
  return WithPayload(std::move(status), kCodeUrl, code);
}

absl::Status WithHttpStatus(absl::Status status, int http_status) {
  return WithPayload(std::move(status), kHttpStatusUrl, absl::StrCat(http_status));
}

absl::Status WithRetryAfter(absl::Status status, absl::Duration retry_after) {
  int64_t seconds = std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(retry_after, absl::Seconds(1))));
  return WithPayload(std::move(status), kRetryAfterUrl, absl::StrCat(seconds));
}

absl::Status InvalidParam(std::string_view param, std::string_view message) {
  return WithParam(absl::InvalidArgumentError(std::string(message)), param);
}

int HttpStatusOf(const absl::Status& status) {
  int explicit_status = 0;
  std::optional<std::string> attached = Payload(status, kHttpStatusUrl);
  if (attached.has_value() && absl::SimpleAtoi(*attached, &explicit_status)) return explicit_status;
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
      return 409;
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return 503;
    default:
      return 500;
  }
}

std::string ErrorJson(const absl::Status& status) {
  std::optional<std::string> param = Payload(status, kParamUrl);
  std::optional<std::string> code = Payload(status, kCodeUrl);
  nlohmann::json error = {{"message", std::string(status.message())},
                          {"type", ErrorType(HttpStatusOf(status))},
                          {"param", param.has_value() ? nlohmann::json(*param) : nlohmann::json(nullptr)},
                          {"code", code.has_value() ? nlohmann::json(*code) : nlohmann::json(nullptr)}};
  return nlohmann::json{{"error", error}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

HttpResponse ErrorResponse(const absl::Status& status) {
  HttpResponse response;
  response.status = HttpStatusOf(status);
  response.body = ErrorJson(status);
  std::optional<std::string> retry_after = Payload(status, kRetryAfterUrl);
  if (retry_after.has_value()) response.headers.emplace_back("Retry-After", *retry_after);
  // RFC 9110: a 401 names the scheme that would be accepted.
  if (response.status == 401) response.headers.emplace_back("WWW-Authenticate", "Bearer");
  return response;
}

}  // namespace doze::gateway

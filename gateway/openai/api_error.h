// Errors as the OpenAI API reports them: {"error": {"message", "type", "param", "code"}} with an HTTP status.
// Inside the gateway they travel as absl::Status; the param, code, HTTP status and Retry-After ride along as
// payloads.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gateway/http/http_types.h"

namespace doze::gateway {

// Returns `status` with the request field it concerns attached (OpenAI's "param").
absl::Status WithParam(absl::Status status, std::string_view param);

// Returns `status` with a machine-readable code attached (OpenAI's "code", e.g. "context_length_exceeded").
absl::Status WithCode(absl::Status status, std::string_view code);

// Returns `status` with an explicit HTTP status attached, overriding the one its code maps to.
absl::Status WithHttpStatus(absl::Status status, int http_status);

// Returns `status` with a Retry-After hint attached.
absl::Status WithRetryAfter(absl::Status status, absl::Duration retry_after);

// Returns InvalidArgument naming `param`.
absl::Status InvalidParam(std::string_view param, std::string_view message);

// Returns the HTTP status of `status`: its attached one, else by code (InvalidArgument 400, Unauthenticated
// 401, PermissionDenied 403, NotFound 404, FailedPrecondition 409, ResourceExhausted and Unavailable and
// DeadlineExceeded 503, others 500).
int HttpStatusOf(const absl::Status& status);

// Returns the OpenAI error object's JSON text for `status`.
std::string ErrorJson(const absl::Status& status);

// Returns the whole HTTP error response for `status`, with Retry-After when attached.
HttpResponse ErrorResponse(const absl::Status& status);

}  // namespace doze::gateway

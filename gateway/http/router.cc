#include "gateway/http/router.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gateway/openai/api_error.h"

namespace doze::gateway {

void Router::Add(std::string method, std::string path, HttpHandler handler) {
  routes_.push_back({std::move(method), std::move(path), false, std::move(handler)});
}

void Router::AddPrefix(std::string method, std::string prefix, HttpHandler handler) {
  routes_.push_back({std::move(method), std::move(prefix), true, std::move(handler)});
}

void Router::Route(HttpRequest request, std::shared_ptr<ResponseChannel> channel) const {
  std::vector<std::string> allowed;  // the path's methods, for a 405's Allow header
  auto allow = [&allowed](const std::string& method) {
    if (std::find(allowed.begin(), allowed.end(), method) == allowed.end()) allowed.push_back(method);
  };
  for (const Route_& route : routes_) {
    bool matches = route.prefix ? absl::StartsWith(request.path, route.path) : request.path == route.path;
    if (!matches) continue;
    // HEAD is GET without the body (the session leaves it out).
    if (route.method == request.method || (request.method == "HEAD" && route.method == "GET")) {
      route.handler(std::move(request), std::move(channel));
      return;
    }
    allow(route.method);
    if (route.method == "GET") allow("HEAD");
  }
  if (!allowed.empty()) {
    HttpResponse response =
        ErrorResponse(WithHttpStatus(absl::InvalidArgumentError(absl::StrCat(
                                         "method ", request.method, " is not allowed on ", request.path,
                                         " (allowed: ", absl::StrJoin(allowed, ", "), ")")),
                                     405));
    response.headers.emplace_back("Allow", absl::StrJoin(allowed, ", "));
    channel->Send(std::move(response));
    return;
  }
  channel->Send(ErrorResponse(absl::NotFoundError(absl::StrCat("no route for ", request.path))));
}

}  // namespace doze::gateway

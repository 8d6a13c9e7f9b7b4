#include "gateway/http/router.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gateway/openai/api_error.h"

namespace doze::gateway {

void Router::Add(std::string method, std::string path, HttpHandler handler) {
  routes_.push_back({std::move(method), std::move(path), false, std::move(handler)});
}

void Router::AddPrefix(std::string method, std::string prefix, HttpHandler handler) {
  routes_.push_back({std::move(method), std::move(prefix), true, std::move(handler)});
}

void Router::Route(HttpRequest request, std::shared_ptr<ResponseChannel> channel) const {
  bool path_known = false;
  for (const Route_& route : routes_) {
    bool matches = route.prefix ? absl::StartsWith(request.path, route.path) : request.path == route.path;
    if (!matches) continue;
    path_known = true;
    if (route.method == request.method) {
      route.handler(std::move(request), std::move(channel));
      return;
    }
  }
  if (path_known) {
    channel->Send(
        ErrorResponse(WithHttpStatus(absl::InvalidArgumentError(absl::StrCat(
                                         "method ", request.method, " is not allowed on ", request.path)),
                                     405)));
    return;
  }
  channel->Send(ErrorResponse(absl::NotFoundError(absl::StrCat("no route for ", request.path))));
}

}  // namespace doze::gateway

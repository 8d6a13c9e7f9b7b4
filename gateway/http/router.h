// Maps a request's method and path to its handler. Paths are exact, or a prefix ending in '/' whose handler
// reads the rest of the path itself.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gateway/http/http_types.h"

namespace doze::gateway {

// A fixed table of routes, built at start-up and read concurrently afterwards.
class Router {
 public:
  // Adds a handler for `method` on exactly `path`.
  void Add(std::string method, std::string path, HttpHandler handler);

  // Adds a handler for `method` on every path that starts with `prefix`.
  void AddPrefix(std::string method, std::string prefix, HttpHandler handler);

  // Serves `request`: its handler, or a 404 (no such path) or 405 (path known, method not) error.
  void Route(HttpRequest request, std::shared_ptr<ResponseChannel> channel) const;

 private:
  struct Route_ {
    std::string method;
    std::string path;
    bool prefix;
    HttpHandler handler;
  };
  std::vector<Route_> routes_;
};

}  // namespace doze::gateway

// The HTTP/1.1 server: accepts connections on an Asio io_context, enforces the connection limit, and hands
// each connection to a session that reads requests within the size and time limits and routes them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "boost/asio/io_context.hpp"
#include "gateway/http/router.h"

namespace doze::gateway {

// The limits every connection is held to.
struct HttpLimits {
  int max_connections = 1024;
  int64_t max_header_bytes = 16 << 10;  // Larger headers: 431.
  int64_t max_body_bytes = 1 << 20;     // Larger bodies: 413, before the body is read.
  absl::Duration header_timeout = absl::Seconds(10);
  absl::Duration body_timeout = absl::Seconds(30);
  absl::Duration stream_idle_timeout = absl::Seconds(60);
  // A streamed response's bytes the client has not taken yet (past what the kernel's socket buffers hold):
  // beyond this, a client that has acknowledged nothing for 3 s is cut and its worker call cancelled.
  int64_t max_stream_buffer_bytes = 1 << 20;
};

// Listens on one address; every method is thread-safe.
class HttpServer {
 public:
  // `router` must outlive the server. Accepts on `io_context`. With `num_loops` 0 the connections run there
  // too (each on a strand); otherwise the server runs `num_loops` threads, each with its own event loop, and
  // spreads the connections over them: a loop wakes only for its own connections, never to hand work to
  // another thread. With a `busy_poll` window each loop's thread polls for that long after each handler
  // before it blocks (gateway/common/busy_poll.h).
  HttpServer(boost::asio::io_context& io_context, HttpLimits limits, const Router* router, int num_loops = 0,
             absl::Duration busy_poll = absl::ZeroDuration());
  ~HttpServer();

  // Binds and listens on host:port (port 0: any free port) and starts accepting; returns the bound port.
  absl::StatusOr<uint16_t> Start(const std::string& host, uint16_t port);

  // Stops accepting; connections waiting for a request are closed, the others once their response ends.
  void StopAccepting();

  // Returns the number of open connections.
  int num_connections() const;

  // Returns the number of connections with a response in progress.
  int num_busy() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace doze::gateway

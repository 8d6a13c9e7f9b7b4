#include "gateway/http/http_server.h"

#include <pthread.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/strand.hpp"
#include "gateway/common/busy_poll.h"
#include "gateway/http/http_session.h"

namespace doze::gateway {

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

// Runs `loop` until it is stopped; with a busy-poll window, polls it (handlers and sockets, without blocking)
// for that long after each handler before blocking for the next.
void RunLoop(net::io_context& loop, absl::Duration busy_poll) {
  BusyPoll poll(busy_poll);
  if (!poll.enabled()) {
    loop.run();
    return;
  }
  while (!loop.stopped()) {
    if (loop.poll() > 0) {
      poll.OnEvent();
    } else if (!poll.KeepPolling()) {
      if (loop.run_one() == 0) return;
      poll.OnEvent();
    }
  }
}

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  // The acceptor runs on a strand of `io`: its accept handler (which starts the next accept) and the close
  // that StopAccepting posts may otherwise run at once on two of the io_context's threads.
  Impl(net::io_context& io, HttpLimits limits, const Router* router, int num_loops, absl::Duration busy_poll)
      : io_context(io), acceptor(net::make_strand(io)), busy_poll(busy_poll) {
    context = std::make_shared<SessionContext>();
    context->limits = limits;
    context->router = router;
    for (int i = 0; i < num_loops; ++i) {
      // Concurrency hint 1: one thread runs the loop, so Asio takes no locks for its queue.
      loops.push_back(std::make_unique<net::io_context>(1));
      guards.push_back(net::make_work_guard(*loops.back()));
    }
  }

  void StartLoops() {
    for (auto& loop : loops) {
      threads.emplace_back([loop = loop.get(), window = busy_poll] { RunLoop(*loop, window); });
      pthread_setname_np(threads.back().native_handle(), "doze-http");
    }
  }

  void StopLoops() {
    guards.clear();
    for (auto& loop : loops) loop->stop();
    for (std::thread& thread : threads) thread.join();
    threads.clear();
  }

  // Where the next connection runs: the next loop in turn, or a strand of the server's io_context.
  net::any_io_executor NextExecutor() {
    if (loops.empty()) return net::make_strand(io_context);
    return loops[next_loop.fetch_add(1) % loops.size()]->get_executor();
  }

  void Accept() {
    acceptor.async_accept(NextExecutor(),
                          [self = shared_from_this()](boost::system::error_code error, tcp::socket socket) {
                            if (error) {
                              if (self->acceptor.is_open()) self->Accept();
                              return;
                            }
                            self->OnAccepted(std::move(socket));
                            self->Accept();
                          });
  }

  void OnAccepted(tcp::socket socket) {
    if (context->stopping.load()) return;
    if (context->num_connections.load() >= context->limits.max_connections) {
      boost::system::error_code ignored;
      socket.close(ignored);
      return;
    }
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto session = std::make_shared<HttpSession>(std::move(socket), context);
    {
      absl::MutexLock lock(&mu);
      std::erase_if(sessions, [](const std::weak_ptr<HttpSession>& s) { return s.expired(); });
      sessions.push_back(session);
    }
    session->Run();
  }

  net::io_context& io_context;
  std::vector<std::unique_ptr<net::io_context>> loops;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  std::vector<std::thread> threads;
  std::atomic<size_t> next_loop{0};
  tcp::acceptor acceptor;
  const absl::Duration busy_poll;  // Of each loop's thread (RunLoop).
  std::shared_ptr<SessionContext> context;
  absl::Mutex mu;
  std::vector<std::weak_ptr<HttpSession>> sessions ABSL_GUARDED_BY(mu);
};

HttpServer::HttpServer(net::io_context& io_context, HttpLimits limits, const Router* router, int num_loops,
                       absl::Duration busy_poll)
    : impl_(std::make_shared<Impl>(io_context, limits, router, num_loops, busy_poll)) {}

HttpServer::~HttpServer() {
  StopAccepting();
  impl_->StopLoops();
}

absl::StatusOr<uint16_t> HttpServer::Start(const std::string& host, uint16_t port) {
  boost::system::error_code error;
  net::ip::address address = net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, error);
  if (error) return absl::InvalidArgumentError(absl::StrCat("server.listen: bad address \"", host, "\""));
  tcp::endpoint endpoint(address, port);
  tcp::acceptor& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), error);
  if (!error) acceptor.set_option(net::socket_base::reuse_address(true), error);
  if (!error) acceptor.bind(endpoint, error);
  if (!error) acceptor.listen(net::socket_base::max_listen_connections, error);
  if (error) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", host, ":", port, ": ", error.message()));
  }
  uint16_t bound = acceptor.local_endpoint().port();
  impl_->StartLoops();
  impl_->Accept();
  return bound;
}

void HttpServer::StopAccepting() {
  impl_->context->stopping.store(true);
  net::post(impl_->acceptor.get_executor(), [impl = impl_] {
    boost::system::error_code ignored;
    impl->acceptor.close(ignored);
  });
  absl::MutexLock lock(&impl_->mu);
  for (const std::weak_ptr<HttpSession>& weak : impl_->sessions) {
    if (std::shared_ptr<HttpSession> session = weak.lock()) session->CloseIfIdle();
  }
}

int HttpServer::num_connections() const { return impl_->context->num_connections.load(); }

int HttpServer::num_busy() const { return impl_->context->num_busy.load(); }

}  // namespace doze::gateway

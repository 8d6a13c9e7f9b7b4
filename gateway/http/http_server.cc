#include "gateway/http/http_server.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/strand.hpp"
#include "gateway/http/http_session.h"

namespace doze::gateway {

namespace net = boost::asio;
using tcp = net::ip::tcp;

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(net::io_context& io, HttpLimits limits, const Router* router) : io_context(io), acceptor(io) {
    context = std::make_shared<SessionContext>();
    context->limits = limits;
    context->router = router;
  }

  void Accept() {
    acceptor.async_accept(net::make_strand(io_context),
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
  tcp::acceptor acceptor;
  std::shared_ptr<SessionContext> context;
  absl::Mutex mu;
  std::vector<std::weak_ptr<HttpSession>> sessions ABSL_GUARDED_BY(mu);
};

HttpServer::HttpServer(net::io_context& io_context, HttpLimits limits, const Router* router)
    : impl_(std::make_shared<Impl>(io_context, limits, router)) {}

HttpServer::~HttpServer() { StopAccepting(); }

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

#include "gateway/http/http_session.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/post.hpp"
#include "gateway/openai/api_error.h"

namespace doze::gateway {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

// Bytes a pipelining client may send ahead while its previous request is served.
constexpr size_t kMaxReadAhead = 64 << 10;

std::chrono::nanoseconds ToChrono(absl::Duration duration) { return absl::ToChronoNanoseconds(duration); }

}  // namespace

HttpSession::HttpSession(net::ip::tcp::socket socket, std::shared_ptr<SessionContext> context)
    : stream_(std::move(socket)), context_(std::move(context)) {
  context_->num_connections.fetch_add(1);
}

HttpSession::~HttpSession() {
  if (busy_) context_->num_busy.fetch_sub(1);
  context_->num_connections.fetch_sub(1);
}

void HttpSession::Run() {
  net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->ReadHeader(); });
}

void HttpSession::CloseIfIdle() {
  net::post(stream_.get_executor(), [self = shared_from_this()] {
    if (!self->busy_) self->Close();
  });
}

void HttpSession::ReadHeader() {
  if (closed_) return;
  if (context_->stopping.load()) return Close();
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(context_->limits.max_header_bytes));
  parser_->body_limit(static_cast<uint64_t>(context_->limits.max_body_bytes));
  stream_.expires_after(ToChrono(context_->limits.header_timeout));
  http::async_read_header(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code error, size_t) { self->OnHeader(error); });
}

void HttpSession::OnHeader(beast::error_code error) {
  if (error == http::error::header_limit) return RejectAndClose(431, "request header fields too large");
  if (error == http::error::body_limit) return RejectAndClose(413, "request body larger than the limit");
  if (error == http::error::end_of_stream || error == http::error::partial_message) return Close();
  if (error) {
    bool protocol_error = error.category() == beast::error_code(http::error::bad_target).category();
    return protocol_error ? RejectAndClose(400, absl::StrCat("malformed HTTP request: ", error.message()))
                          : Close();
  }
  boost::optional<uint64_t> length = parser_->content_length();
  if (length && *length > static_cast<uint64_t>(context_->limits.max_body_bytes)) {
    return RejectAndClose(413, "request body larger than the limit");
  }
  if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
    auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
    stream_.expires_after(ToChrono(context_->limits.body_timeout));
    http::async_write(stream_, *cont, [self = shared_from_this(), cont](beast::error_code e, size_t) {
      self->OnContinueSent(e);
    });
    return;
  }
  ReadBody();
}

void HttpSession::OnContinueSent(beast::error_code error) {
  if (error) return Close();
  ReadBody();
}

void HttpSession::ReadBody() {
  stream_.expires_after(ToChrono(context_->limits.body_timeout));
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code error, size_t) { self->OnBody(error); });
}

void HttpSession::OnBody(beast::error_code error) {
  if (error == http::error::body_limit) return RejectAndClose(413, "request body larger than the limit");
  if (error) return Close();
  http::request<http::string_body> message = parser_->release();
  HttpRequest request;
  request.method = std::string(message.method_string());
  std::string target(message.target());
  request.path = target.substr(0, target.find('?'));
  request.authorization = std::string(message[http::field::authorization]);
  request.body = std::move(message.body());
  keep_alive_ = message.keep_alive();
  busy_ = true;
  context_->num_busy.fetch_add(1);
  stream_.expires_never();
  WatchClient();
  context_->router->Route(std::move(request), shared_from_this());
}

void HttpSession::RejectAndClose(int status, const std::string& message) {
  keep_alive_ = false;
  rejected_ = true;
  busy_ = true;
  context_->num_busy.fetch_add(1);
  HttpResponse response = ErrorResponse(WithHttpStatus(absl::InvalidArgumentError(message), status));
  whole_.emplace(static_cast<http::status>(status), 11);
  whole_->set(http::field::content_type, response.content_type);
  whole_->body() = std::move(response.body);
  whole_->keep_alive(false);
  whole_->prepare_payload();
  stream_.expires_after(ToChrono(context_->limits.stream_idle_timeout));
  Flush();
}

void HttpSession::WatchClient() {
  if (watching_ || closed_ || buffer_.size() >= kMaxReadAhead) return;
  watching_ = true;
  stream_.async_read_some(
      buffer_.prepare(4096),
      [self = shared_from_this()](beast::error_code error, size_t n) { self->OnWatch(error, n); });
}

void HttpSession::OnWatch(beast::error_code error, size_t bytes) {
  watching_ = false;
  if (error == net::error::operation_aborted && !busy_ && !closed_) return ReadHeader();
  if (error) return ClientGone();
  buffer_.commit(bytes);
  if (busy_) return WatchClient();
  ReadHeader();
}

void HttpSession::ClientGone() {
  if (client_gone_) return;
  client_gone_ = true;
  if (on_client_gone_) std::exchange(on_client_gone_, nullptr)();
  if (!writing_) Close();
}

void HttpSession::OnClientGone(std::function<void()> callback) {
  net::dispatch(stream_.get_executor(),
                [self = shared_from_this(), callback = std::move(callback)]() mutable {
                  if (self->client_gone_) return callback();
                  if (self->busy_) self->on_client_gone_ = std::move(callback);
                });
}

void HttpSession::Send(HttpResponse response) {
  net::dispatch(stream_.get_executor(),
                [self = shared_from_this(), response = std::move(response)]() mutable {
                  if (!self->busy_ || self->whole_ || self->stream_head_) return;
                  auto& out = self->whole_.emplace(static_cast<http::status>(response.status), 11);
                  out.set(http::field::content_type, response.content_type);
                  for (auto& [name, value] : response.headers) out.set(name, value);
                  out.body() = std::move(response.body);
                  out.keep_alive(self->keep_alive_ && !self->context_->stopping.load());
                  out.prepare_payload();
                  self->Flush();
                });
}

void HttpSession::StartStream(const std::string& content_type) {
  net::dispatch(stream_.get_executor(), [self = shared_from_this(), content_type] {
    if (!self->busy_ || self->whole_ || self->stream_head_) return;
    auto& head = self->stream_head_.emplace(http::status::ok, 11);
    head.set(http::field::content_type, content_type);
    head.set(http::field::cache_control, "no-cache");
    head.keep_alive(self->keep_alive_ && !self->context_->stopping.load());
    head.chunked(true);
    self->head_serializer_.emplace(head);
    self->Flush();
  });
}

void HttpSession::Write(std::string data) {
  net::dispatch(stream_.get_executor(), [self = shared_from_this(), data = std::move(data)] {
    if (!self->stream_head_ || self->end_requested_) return;
    self->pending_data_ += data;
    self->Flush();
  });
}

void HttpSession::EndStream() {
  net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
    if (!self->stream_head_) return;
    self->end_requested_ = true;
    self->Flush();
  });
}

void HttpSession::Flush() {
  if (writing_ || closed_) return;
  if (client_gone_) return Close();
  auto self = shared_from_this();
  stream_.expires_after(ToChrono(context_->limits.stream_idle_timeout));
  if (whole_) {
    writing_ = true;
    http::async_write(stream_, *whole_, [self](beast::error_code e, size_t) { self->OnWritten(e, true); });
  } else if (stream_head_ && !head_sent_) {
    writing_ = true;
    head_sent_ = true;
    http::async_write_header(stream_, *head_serializer_,
                             [self](beast::error_code e, size_t) { self->OnWritten(e, false); });
  } else if (!pending_data_.empty()) {
    writing_ = true;
    current_data_ = std::exchange(pending_data_, {});
    net::async_write(stream_, http::make_chunk(net::buffer(current_data_)),
                     [self](beast::error_code e, size_t) { self->OnWritten(e, false); });
  } else if (end_requested_) {
    writing_ = true;
    net::async_write(stream_, http::make_chunk_last(),
                     [self](beast::error_code e, size_t) { self->OnWritten(e, true); });
  } else if (stream_head_) {
    stream_.expires_never();
  }
}

void HttpSession::OnWritten(beast::error_code error, bool response_done) {
  writing_ = false;
  if (error) {
    ClientGone();
    return Close();
  }
  if (response_done) return FinishResponse();
  Flush();
}

void HttpSession::FinishResponse() {
  bool keep_alive = whole_ ? whole_->keep_alive() : stream_head_->keep_alive();
  whole_.reset();
  head_serializer_.reset();
  stream_head_.reset();
  head_sent_ = false;
  end_requested_ = false;
  on_client_gone_ = nullptr;
  busy_ = false;
  context_->num_busy.fetch_sub(1);
  if (!keep_alive || client_gone_ || context_->stopping.load()) return Close();
  if (watching_) {
    // The next request is read by ReadHeader once the watch read has been cancelled.
    beast::error_code ignored;
    stream_.socket().cancel(ignored);
    return;
  }
  ReadHeader();
}

void HttpSession::Close() {
  if (closed_) return;
  closed_ = true;
  beast::error_code ignored;
  if (rejected_) {
    // Reading what the client still sends lets it see the error instead of a reset connection.
    stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
    return Discard();
  }
  stream_.socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
  stream_.close();
}

void HttpSession::Discard() {
  stream_.expires_after(std::chrono::seconds(2));
  buffer_.clear();
  stream_.async_read_some(buffer_.prepare(16 << 10),
                          [self = shared_from_this()](beast::error_code error, size_t) {
                            if (error) return self->stream_.close();
                            self->Discard();
                          });
}

}  // namespace doze::gateway

#include "gateway/http/http_session.h"

#include <errno.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/post.hpp"
#include "gateway/http/request_target.h"
#include "gateway/openai/api_error.h"
#include "worker/common/logging.h"

namespace doze::gateway {
namespace {

// The most one asynchronous write offers the socket at a time.
constexpr size_t kWriteSlice = 256 << 10;
// A stream is cut when more than server.max_stream_buffer_bytes wait (in the gateway and in the socket's send
// queue) and its client has acknowledged none of them for this long.
constexpr auto kStall = std::chrono::seconds(3);

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

// Bytes a pipelining client may send ahead while its previous request is served.
constexpr size_t kMaxReadAhead = 64 << 10;

std::chrono::nanoseconds ToChrono(absl::Duration duration) { return absl::ToChronoNanoseconds(duration); }

// Whether `error` is the parser's finding about the bytes (answered 400) rather than the connection's end
// or a read error (the connection just closes).
bool IsProtocolError(beast::error_code error) {
  return error.category() == beast::error_code(http::error::bad_target).category() &&
         error != http::error::end_of_stream && error != http::error::partial_message;
}

}  // namespace

HttpSession::HttpSession(net::ip::tcp::socket socket, std::shared_ptr<SessionContext> context)
    : stream_(std::move(socket)), context_(std::move(context)), fd_(stream_.socket().native_handle()) {
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
    if (self->busy_ || self->closed_) return;
    if (!self->RequestStarted()) return self->Close();
    self->MarkBusy();  // read to its end and answered
  });
}

void HttpSession::MarkBusy() {
  if (busy_) return;
  busy_ = true;
  context_->num_busy.fetch_add(1);
}

bool HttpSession::RequestStarted() const { return buffer_.size() > 0 || (parser_ && parser_->got_some()); }

void HttpSession::ReadHeader() {
  if (closed_) return;
  SkipEmptyLines();
  // Stopping, a request already here (pipelined) is still answered; the connection closes after it.
  if (context_->stopping.load()) {
    if (buffer_.size() == 0) return Close();
    MarkBusy();  // the shutdown waits for its answer
  }
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(context_->limits.max_header_bytes));
  parser_->body_limit(static_cast<uint64_t>(context_->limits.max_body_bytes));
  stream_.expires_after(ToChrono(context_->limits.header_timeout));
  http::async_read_header(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code error, size_t) { self->OnHeader(error); });
}

void HttpSession::SkipEmptyLines() {
  // RFC 9112 2.2: empty lines before a request line are ignored (a client may end a body with CRLF).
  while (buffer_.size() >= 2) {
    const char* data = static_cast<const char*>(buffer_.data().data());
    if (data[0] != '\r' || data[1] != '\n') return;
    buffer_.consume(2);
  }
}

void HttpSession::OnHeader(beast::error_code error) {
  if (error == http::error::header_limit) return RejectAndClose(431, "request header fields too large");
  if (error == http::error::body_limit) return RejectAndClose(413, "request body larger than the limit");
  if (error) {
    return IsProtocolError(error)
               ? RejectAndClose(400, absl::StrCat("malformed HTTP request: ", error.message()))
               : Close();
  }
  const auto& header = parser_->get();
  if (header.version() >= 11 && header.find(http::field::host) == header.end())
    return RejectAndClose(400, "an HTTP/1.1 request needs a Host header");
  // Only the chunked coding is decoded: a body in another (gzip, deflate) would be read as its bytes.
  if (auto coding = header.find(http::field::transfer_encoding);
      coding != header.end() && !beast::iequals(coding->value(), "chunked")) {
    return RejectAndClose(501, absl::StrCat("transfer coding \"", std::string(coding->value()),
                                            "\" is not supported: only chunked"));
  }
  // Nor is a compressed body (RFC 9110 15.5.16: 415 for a content coding the server does not accept).
  if (auto coding = header.find(http::field::content_encoding);
      coding != header.end() && !beast::iequals(coding->value(), "identity")) {
    return RejectAndClose(415, absl::StrCat("content coding \"", std::string(coding->value()),
                                            "\" is not supported: send the body uncompressed"));
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
  if (error) {
    return IsProtocolError(error)
               ? RejectAndClose(400, absl::StrCat("malformed request body: ", error.message()))
               : Close();
  }
  http::request<http::string_body> message = parser_->release();
  HttpRequest request;
  request.method = std::string(message.method_string());
  absl::StatusOr<std::string> path =
      RequestPath(absl::string_view(message.target().data(), message.target().size()));
  if (!path.ok()) return RejectAndClose(400, std::string(path.status().message()));
  request.path = *std::move(path);
  request.authorization = std::string(message[http::field::authorization]);
  request.body = std::move(message.body());
  {
    absl::MutexLock lock(&out_mu_);
    keep_alive_ = message.keep_alive();
    http10_ = message.version() < 11;
    head_ = message.method() == http::verb::head;
    phase_ = Phase::kAwaiting;
  }
  MarkBusy();
  stream_.expires_never();
  WatchClient();
  context_->router->Route(std::move(request), shared_from_this());
}

void HttpSession::RejectAndClose(int status, const std::string& message) {
  rejected_ = true;
  MarkBusy();
  {
    absl::MutexLock lock(&out_mu_);
    keep_alive_ = false;
    phase_ = Phase::kAwaiting;
  }
  stream_.expires_after(ToChrono(context_->limits.stream_idle_timeout));
  SendWhole(ErrorResponse(WithHttpStatus(absl::InvalidArgumentError(message), status)));
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
  bool async_writing;
  {
    absl::MutexLock lock(&out_mu_);
    async_writing = async_writing_;
  }
  if (!async_writing) Close();
}

void HttpSession::OnClientGone(std::function<void()> callback) {
  net::dispatch(stream_.get_executor(),
                [self = shared_from_this(), callback = std::move(callback)]() mutable {
                  if (self->client_gone_) return callback();
                  if (self->busy_) self->on_client_gone_ = std::move(callback);
                });
}

void HttpSession::Send(HttpResponse response) { SendWhole(std::move(response)); }

void HttpSession::SendWhole(HttpResponse response) {
  absl::MutexLock lock(&out_mu_);
  if (phase_ != Phase::kAwaiting) return;
  response_keep_alive_ = keep_alive_ && !context_->stopping.load();
  beast::string_view reason = http::obsolete_reason(static_cast<http::status>(response.status));
  absl::StrAppend(&out_, "HTTP/1.1 ", response.status, " ", absl::string_view(reason.data(), reason.size()),
                  "\r\nContent-Type: ", response.content_type, "\r\n");
  for (const auto& [name, value] : response.headers) absl::StrAppend(&out_, name, ": ", value, "\r\n");
  absl::StrAppend(&out_, "Content-Length: ", response.body.size(), "\r\n", ConnectionHeader(), "\r\n");
  if (!head_) out_ += response.body;  // HEAD: GET's header, no body
  phase_ = Phase::kEnding;
  SendLocked();
}

const char* HttpSession::ConnectionHeader() const {
  if (!response_keep_alive_) return "Connection: close\r\n";
  return http10_ ? "Connection: keep-alive\r\n" : "";  // HTTP/1.0 closes unless told otherwise
}

void HttpSession::StartStream(const std::string& content_type) {
  absl::MutexLock lock(&out_mu_);
  if (phase_ != Phase::kAwaiting) return;
  // An HTTP/1.0 client knows no chunks: its stream is the bytes themselves, ended by closing the connection.
  response_keep_alive_ = keep_alive_ && !http10_ && !context_->stopping.load();
  absl::StrAppend(&out_, "HTTP/1.1 200 OK\r\nContent-Type: ", content_type, "\r\nCache-Control: no-cache\r\n",
                  http10_ ? "" : "Transfer-Encoding: chunked\r\n", ConnectionHeader(), "\r\n");
  phase_ = Phase::kStreaming;  // The header waits for the first chunk: one send for both.
}

void HttpSession::Write(std::string data) { AppendChunk(data, /*last=*/false); }

void HttpSession::WriteLast(std::string data) { AppendChunk(data, /*last=*/true); }

void HttpSession::EndStream() { AppendChunk({}, /*last=*/true); }

void HttpSession::AppendChunk(absl::string_view data, bool last) {
  absl::MutexLock lock(&out_mu_);
  if (phase_ != Phase::kStreaming) return;
  if (head_) {
    // HEAD: the stream's header alone, no body.
  } else if (http10_) {
    out_.append(data.data(), data.size());  // HTTP/1.0: the body unframed, ended by closing
  } else {
    if (!data.empty()) absl::StrAppend(&out_, absl::Hex(data.size()), "\r\n", data, "\r\n");
    if (last) out_ += "0\r\n\r\n";  // (an empty chunk would end the stream early)
  }
  if (last) phase_ = Phase::kEnding;
  if (async_writing_ && StalledLocked()) return CutSlowClientLocked();
  SendLocked();
}

bool HttpSession::StalledLocked() {
  int queued = 0;  // in the socket's send queue: not sent, or sent and not acknowledged
  if (::ioctl(fd_, SIOCOUTQ, &queued) != 0 || queued < 0) return false;
  const uint64_t acked = given_ - std::min<uint64_t>(given_, static_cast<uint64_t>(queued));
  const auto now = std::chrono::steady_clock::now();
  if (acked > max_acked_) {
    max_acked_ = acked;
    last_progress_ = now;
  }
  return static_cast<int64_t>(out_.size()) + queued > context_->limits.max_stream_buffer_bytes &&
         now - last_progress_ > kStall;
}

void HttpSession::CutSlowClientLocked() {
  DOZE_LOG(WARNING) << "cutting a stream whose client has acknowledged nothing for 3 s with more than "
                    << context_->limits.max_stream_buffer_bytes
                    << " bytes waiting (server.max_stream_buffer_bytes)";
  out_.clear();
  socket_open_ = false;
  // The client counts as gone (its call is cancelled) and the socket closes, which ends the write in flight.
  net::post(stream_.get_executor(), [self = shared_from_this()] { self->OnSendFailed(); });
}

void HttpSession::SendLocked() {
  if (!socket_open_) {
    out_.clear();
    return;
  }
  if (async_writing_) return;  // The strand's write takes out_ when it completes.
  while (!out_.empty()) {
    ssize_t sent = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent > 0) {
      given_ += static_cast<uint64_t>(sent);
      out_.erase(0, static_cast<size_t>(sent));
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    out_.clear();
    socket_open_ = false;  // Nothing more goes out; the strand closes the socket.
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->OnSendFailed(); });
    return;
  }
  if (!out_.empty()) {
    async_writing_ = true;
    last_progress_ = std::chrono::steady_clock::now();
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->AsyncFlush(); });
    return;
  }
  if (phase_ == Phase::kEnding) {
    phase_ = Phase::kIdle;
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->FinishResponse(); });
  }
}

void HttpSession::AsyncFlush() {
  {
    absl::MutexLock lock(&out_mu_);
    if (!socket_open_) {
      async_writing_ = false;
      return;
    }
    if (written_ == current_data_.size()) {
      current_data_ = std::exchange(out_, {});
      written_ = 0;
    }
  }
  // What the socket takes when it can (each completion counts the bytes handed to it: see StalledLocked).
  const size_t slice = std::min(kWriteSlice, current_data_.size() - written_);
  stream_.expires_after(ToChrono(context_->limits.stream_idle_timeout));
  stream_.async_write_some(net::buffer(current_data_.data() + written_, slice),
                           [self = shared_from_this()](beast::error_code error, size_t bytes) {
                             self->OnAsyncWritten(error, bytes);
                           });
}

void HttpSession::OnAsyncWritten(beast::error_code error, size_t bytes) {
  written_ += bytes;
  bool more = false;
  bool finished = false;
  {
    absl::MutexLock lock(&out_mu_);
    given_ += bytes;
    more = !error && socket_open_ && (written_ < current_data_.size() || !out_.empty());
    if (!more) async_writing_ = false;
    if (!more && !error && phase_ == Phase::kEnding) {
      phase_ = Phase::kIdle;
      finished = true;
    }
  }
  if (more) return AsyncFlush();
  current_data_.clear();
  written_ = 0;
  if (error) {
    ClientGone();
    return Close();
  }
  stream_.expires_never();
  if (finished) FinishResponse();
  if (client_gone_) Close();
}

void HttpSession::OnSendFailed() {
  ClientGone();
  Close();
}

void HttpSession::FinishResponse() {
  bool keep_alive;
  {
    absl::MutexLock lock(&out_mu_);
    keep_alive = response_keep_alive_;
  }
  on_client_gone_ = nullptr;
  busy_ = false;
  context_->num_busy.fetch_sub(1);
  if (!keep_alive || client_gone_ || (context_->stopping.load() && buffer_.size() == 0)) return Close();
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
  {
    absl::MutexLock lock(&out_mu_);
    socket_open_ = false;
    out_.clear();
  }
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

// One HTTP/1.1 connection: reads each request's header and body within the limits (431, 413, timeouts),
// routes it, writes the answer (whole or chunked), watches for the client leaving while it waits, and keeps
// the connection alive between requests. All state is touched on the connection's strand.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "gateway/http/http_server.h"

namespace doze::gateway {

// What the sessions of one server share.
struct SessionContext {
  HttpLimits limits;
  const Router* router = nullptr;
  std::atomic<int> num_connections{0};
  std::atomic<int> num_busy{0};
  std::atomic<bool> stopping{false};
};

// The session of one connection; owned by the pending operations on it and by handlers answering it.
class HttpSession : public ResponseChannel, public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(boost::asio::ip::tcp::socket socket, std::shared_ptr<SessionContext> context);
  ~HttpSession() override;

  // Starts reading the first request.
  void Run();

  // Closes the connection if it is waiting for a request (shutdown); a busy one closes after its response.
  void CloseIfIdle();

  void Send(HttpResponse response) override;
  void StartStream(const std::string& content_type) override;
  void Write(std::string data) override;
  void EndStream() override;
  void OnClientGone(std::function<void()> callback) override;

 private:
  using Parser = boost::beast::http::request_parser<boost::beast::http::string_body>;

  void ReadHeader();
  void OnHeader(boost::beast::error_code error);
  void OnContinueSent(boost::beast::error_code error);
  void ReadBody();
  void OnBody(boost::beast::error_code error);
  // Answers a request that could not be read (413, 431, 400) and closes.
  void RejectAndClose(int status, const std::string& message);
  void WatchClient();
  void OnWatch(boost::beast::error_code error, size_t bytes);
  void ClientGone();
  // Starts the next write when none is running.
  void Flush();
  void OnWritten(boost::beast::error_code error, bool response_done);
  void FinishResponse();
  void Close();
  // Reads and drops what the client still sends after a rejection, then closes.
  void Discard();

  boost::beast::tcp_stream stream_;
  std::shared_ptr<SessionContext> context_;
  boost::beast::flat_buffer buffer_;
  std::optional<Parser> parser_;

  // The response in progress; strand only.
  bool busy_ = false;  // A request was routed and its response has not ended.
  bool keep_alive_ = false;
  bool writing_ = false;
  bool watching_ = false;  // A read that notices the client leaving is pending.
  bool client_gone_ = false;
  bool closed_ = false;
  bool rejected_ = false;  // The request was refused unread; the rest of it is drained before closing.
  std::optional<boost::beast::http::response<boost::beast::http::string_body>> whole_;
  std::optional<boost::beast::http::response<boost::beast::http::empty_body>> stream_head_;
  std::optional<boost::beast::http::response_serializer<boost::beast::http::empty_body>> head_serializer_;
  bool head_sent_ = false;
  std::string pending_data_;
  std::string current_data_;
  bool end_requested_ = false;
  std::function<void()> on_client_gone_;
};

}  // namespace doze::gateway

// One HTTP/1.1 connection: reads each request's header and body within the limits (431, 413, timeouts),
// routes it, writes the answer (whole or chunked), watches for the client leaving while it waits, and keeps
// the connection alive between requests.
//
// Reading and the connection's state live on its executor (a strand, or a loop of its own with one thread).
// The answer is written by the thread that produces it (a gRPC completion, usually): it is serialized and
// sent with one non-blocking send() at once, so the client does not wait for an I/O thread to wake up; only
// what the socket does not take (a slow reader) goes on through an asynchronous write on the strand. The
// output state is guarded by out_mu_, which Close() also takes, so no send() can reach a closed (or reused)
// descriptor.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
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

  // Shutdown: closes the connection if it is waiting for a request with none of it received. A request partly
  // received is read to its end and answered (503: the functions are closed), and counts as busy meanwhile so
  // that the shutdown waits for it; a busy connection answers what it was asked, pipelined requests included,
  // then closes.
  void CloseIfIdle();

  void Send(HttpResponse response) override;
  void StartStream(const std::string& content_type) override;
  void Write(std::string data) override;
  void WriteLast(std::string data) override;
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
  // Where the response to the routed request stands.
  enum class Phase {
    kIdle,       // No request is waiting for an answer.
    kAwaiting,   // A request was routed; nothing answered yet.
    kStreaming,  // The stream's header is out or queued; chunks may follow.
    kEnding,     // The response's last bytes are queued; FinishResponse follows once they are written.
  };

  // Serializes a whole response and sends it.
  void SendWhole(HttpResponse response);
  // Appends `data` as one chunk of the stream (nothing when empty); `last` ends the stream and sends.
  void AppendChunk(absl::string_view data, bool last);
  // Sends out_ directly when no asynchronous write runs; hands the rest to the strand.
  void SendLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(out_mu_);
  // The response's Connection header line ("" where the version's default holds).
  const char* ConnectionHeader() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(out_mu_);
  // On the strand: writes out_ asynchronously (a client that does not keep up).
  void AsyncFlush();
  void OnAsyncWritten(boost::beast::error_code error, size_t bytes);
  // On the strand: a direct send failed (the client left).
  void OnSendFailed();
  // Drops the empty lines (CRLF) the buffer holds before the next request line.
  void SkipEmptyLines();
  // The client takes a stream's bytes too slowly (server.max_stream_buffer_bytes queued): drops them and
  // closes the connection.
  void CutSlowClientLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(out_mu_);
  // Whether more than server.max_stream_buffer_bytes wait and the client has acknowledged none of the bytes
  // sent for kStall (SIOCOUTQ: the socket's queue of bytes not yet acknowledged).
  bool StalledLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(out_mu_);
  void FinishResponse();
  // Counts the connection busy (once) until FinishResponse or its end.
  void MarkBusy();
  // Whether bytes of a request not yet routed have arrived (its start, or one pipelined behind a response).
  bool RequestStarted() const;
  void Close();
  // Reads and drops what the client still sends after a rejection, then closes.
  void Discard();

  boost::beast::tcp_stream stream_;
  std::shared_ptr<SessionContext> context_;
  boost::beast::flat_buffer buffer_;
  std::optional<Parser> parser_;

  // The connection; strand only.
  bool busy_ = false;      // A request was routed (or, at shutdown, started) and its response has not ended.
  bool watching_ = false;  // A read that notices the client leaving is pending.
  bool client_gone_ = false;
  bool closed_ = false;
  bool rejected_ = false;     // The request was refused unread; the rest of it is drained before closing.
  std::string current_data_;  // The bytes the asynchronous writes are sending, a slice at a time.
  size_t written_ = 0;        // How many of them have gone.
  std::function<void()> on_client_gone_;

  // The response in progress; any thread.
  absl::Mutex out_mu_;
  const int fd_;
  Phase phase_ ABSL_GUARDED_BY(out_mu_) = Phase::kIdle;
  bool keep_alive_ ABSL_GUARDED_BY(out_mu_) = false;  // The request allows it (the response may still close).
  bool http10_ ABSL_GUARDED_BY(out_mu_) = false;  // The request is HTTP/1.0: no chunks, keep-alive explicit.
  bool head_ ABSL_GUARDED_BY(out_mu_) = false;    // The request is HEAD: the response has no body.
  bool response_keep_alive_ ABSL_GUARDED_BY(out_mu_) = false;
  bool socket_open_ ABSL_GUARDED_BY(out_mu_) = true;
  bool async_writing_ ABSL_GUARDED_BY(out_mu_) = false;  // The strand writes; direct sends wait their turn.
  std::string out_ ABSL_GUARDED_BY(out_mu_);             // Bytes not yet handed to the socket.
  // Bytes handed to the socket, the most of them the client had acknowledged at a check, and when that grew
  // (or the asynchronous writing began).
  uint64_t given_ ABSL_GUARDED_BY(out_mu_) = 0;
  uint64_t max_acked_ ABSL_GUARDED_BY(out_mu_) = 0;
  std::chrono::steady_clock::time_point last_progress_ ABSL_GUARDED_BY(out_mu_);
};

}  // namespace doze::gateway

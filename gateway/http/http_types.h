// The HTTP vocabulary the gateway's handlers see: a parsed request, a whole response, and the channel a
// handler answers through. Beast stays inside the server and the session.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace doze::gateway {

// A request whose header and body have been read within the server's limits.
struct HttpRequest {
  std::string method;         // "GET", "POST", ...
  std::string path;           // The target without the query string.
  std::string authorization;  // The Authorization header, empty when absent.
  std::string body;
};

// A whole (non-streaming) response.
struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// Returns a response of `status` whose body is `body`, of `content_type`.
inline HttpResponse MakeResponse(int status, std::string body,
                                 std::string content_type = "application/json") {
  HttpResponse response;
  response.status = status;
  response.content_type = std::move(content_type);
  response.body = std::move(body);
  return response;
}

// How a handler answers one request: either Send once, or StartStream, Write any number of times, then
// EndStream or WriteLast. Thread-safe: the calls may come from any thread, in this order. The bytes go out on
// the calling thread when the socket takes them, so a call costs a send() but no thread hand-off.
class ResponseChannel {
 public:
  virtual ~ResponseChannel() = default;

  // Sends a whole response.
  virtual void Send(HttpResponse response) = 0;

  // Starts a 200 chunked stream of `content_type`; its header goes out with the first piece (or the end).
  virtual void StartStream(const std::string& content_type) = 0;

  // Sends one piece of the stream.
  virtual void Write(std::string data) = 0;

  // Sends the last piece of the stream and ends it, in one write.
  virtual void WriteLast(std::string data) = 0;

  // Ends the stream.
  virtual void EndStream() = 0;

  // Sets what runs (once, on some thread) when the client goes away before the response ends.
  virtual void OnClientGone(std::function<void()> callback) = 0;
};

// Serves one request.
using HttpHandler = std::function<void(HttpRequest request, std::shared_ptr<ResponseChannel> channel)>;

}  // namespace doze::gateway

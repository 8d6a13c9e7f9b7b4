// A small blocking HTTP/1.1 client for the gateway's tests, with a deadline on every call.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace doze::gateway::testing {

struct TestResponse {
  int status = 0;                              // 0 when the connection failed or timed out.
  std::map<std::string, std::string> headers;  // Lower-case names.
  std::string body;
};

// The bytes of one HTTP/1.1 request (Host, Connection: close unless `keep_alive`, Content-Length for a body
// or a POST), as Fetch sends it.
std::string BuildRequest(const std::string& method, const std::string& target, const std::string& body,
                         const std::map<std::string, std::string>& headers, bool keep_alive);

// Sends one request (with Content-Length when `body` is not empty) and reads the whole response.
TestResponse Fetch(uint16_t port, const std::string& method, const std::string& target,
                   const std::string& body = "", const std::map<std::string, std::string>& headers = {},
                   int timeout_ms = 30000);

// Sends raw bytes and returns everything read until the server closes or `timeout_ms` passes.
std::string SendRaw(uint16_t port, const std::string& bytes, int timeout_ms = 10000);

// Returns the `data:` payloads of an SSE body, in order.
std::vector<std::string> SseData(const std::string& body);

// A connection that sends a request and then reads the response as it arrives.
class StreamingRequest {
 public:
  StreamingRequest(uint16_t port, const std::string& target, const std::string& body,
                   const std::map<std::string, std::string>& headers = {});
  ~StreamingRequest();

  // A connection that has sent `bytes` as they are: several requests, or the first part of one.
  static std::unique_ptr<StreamingRequest> Raw(uint16_t port, const std::string& bytes);

  // Sends more bytes on the connection.
  void Send(const std::string& bytes);

  // Reads until the received bytes contain `needle` or `timeout_ms` passes; returns whether found.
  bool ReadUntil(const std::string& needle, int timeout_ms = 30000);

  // Everything received so far (raw, chunked framing included).
  const std::string& received() const { return received_; }

  // Closes the connection abruptly.
  void Close();

 private:
  StreamingRequest() = default;

  int fd_ = -1;
  std::string received_;
};

}  // namespace doze::gateway::testing

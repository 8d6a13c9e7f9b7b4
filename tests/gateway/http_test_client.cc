#include "tests/gateway/http_test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace doze::gateway::testing {
namespace {

int Connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool WriteAll(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// Reads into `out` until `done(out)` or the deadline; returns false on timeout.
template <typename Done>
bool ReadUntilDone(int fd, std::string* out, int timeout_ms, Done done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buffer[16384];
  while (!done(*out)) {
    int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now())
            .count());
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, left) <= 0) continue;
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) return done(*out);
    out->append(buffer, static_cast<size_t>(n));
  }
  return true;
}

// Undoes chunked transfer coding.
std::string Dechunk(std::string_view body) {
  std::string out;
  while (!body.empty()) {
    size_t eol = body.find("\r\n");
    if (eol == std::string_view::npos) break;
    size_t size = 0;
    if (!absl::SimpleHexAtoi(absl::string_view(body.data(), eol), &size) || size == 0) break;
    body.remove_prefix(eol + 2);
    out.append(body.substr(0, size));
    body.remove_prefix(std::min(body.size(), size + 2));
  }
  return out;
}

TestResponse ParseResponse(const std::string& raw) {
  TestResponse response;
  size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos) return response;
  std::vector<std::string> lines = absl::StrSplit(raw.substr(0, header_end), "\r\n");
  std::vector<std::string> status_line = absl::StrSplit(lines[0], ' ');
  if (status_line.size() < 2 || !absl::SimpleAtoi(status_line[1], &response.status)) return response;
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    response.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  std::string body = raw.substr(header_end + 4);
  response.body = response.headers["transfer-encoding"] == "chunked" ? Dechunk(body) : body;
  return response;
}

}  // namespace

std::string BuildRequest(const std::string& method, const std::string& target, const std::string& body,
                         const std::map<std::string, std::string>& headers, bool keep_alive) {
  std::ostringstream request;
  request << method << " " << target << " HTTP/1.1\r\nHost: localhost\r\n";
  if (!keep_alive) request << "Connection: close\r\n";
  for (const auto& [name, value] : headers) request << name << ": " << value << "\r\n";
  if (!body.empty() || method == "POST") request << "Content-Length: " << body.size() << "\r\n";
  request << "\r\n" << body;
  return request.str();
}

TestResponse Fetch(uint16_t port, const std::string& method, const std::string& target,
                   const std::string& body, const std::map<std::string, std::string>& headers,
                   int timeout_ms) {
  int fd = Connect(port);
  if (fd < 0) return {};
  std::string raw;
  if (WriteAll(fd, BuildRequest(method, target, body, headers, /*keep_alive=*/false))) {
    ReadUntilDone(fd, &raw, timeout_ms, [](const std::string&) { return false; });
  }
  close(fd);
  return ParseResponse(raw);
}

std::string SendRaw(uint16_t port, const std::string& bytes, int timeout_ms) {
  int fd = Connect(port);
  if (fd < 0) return "";
  std::string raw;
  WriteAll(fd, bytes);
  ReadUntilDone(fd, &raw, timeout_ms, [](const std::string&) { return false; });
  close(fd);
  return raw;
}

std::vector<std::string> SseData(const std::string& body) {
  std::vector<std::string> data;
  for (absl::string_view event : absl::StrSplit(body, "\n\n", absl::SkipEmpty())) {
    for (absl::string_view line : absl::StrSplit(event, '\n')) {
      if (absl::ConsumePrefix(&line, "data: ")) data.emplace_back(line);
    }
  }
  return data;
}

StreamingRequest::StreamingRequest(uint16_t port, const std::string& target, const std::string& body,
                                   const std::map<std::string, std::string>& headers) {
  fd_ = Connect(port);
  if (fd_ >= 0) WriteAll(fd_, BuildRequest("POST", target, body, headers, /*keep_alive=*/false));
}

StreamingRequest::~StreamingRequest() { Close(); }

std::unique_ptr<StreamingRequest> StreamingRequest::Raw(uint16_t port, const std::string& bytes) {
  std::unique_ptr<StreamingRequest> request(new StreamingRequest());
  request->fd_ = Connect(port);
  request->Send(bytes);
  return request;
}

void StreamingRequest::Send(const std::string& bytes) {
  if (fd_ >= 0) WriteAll(fd_, bytes);
}

bool StreamingRequest::ReadUntil(const std::string& needle, int timeout_ms) {
  if (fd_ < 0) return false;
  return ReadUntilDone(fd_, &received_, timeout_ms,
                       [&](const std::string& so_far) { return so_far.find(needle) != std::string::npos; });
}

void StreamingRequest::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

}  // namespace doze::gateway::testing

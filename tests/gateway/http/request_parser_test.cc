#include "gateway/http/request_parser.h"

#include "gateway/openai/api_error.h"
#include "gtest/gtest.h"

namespace doze::gateway {
namespace {

struct Case {
  const char* name;
  std::string bytes;
  int http_status;  // 200: parses; 0: incomplete.
};

TEST(RequestParserTest, Table) {
  HttpLimits limits;
  limits.max_header_bytes = 1024;
  limits.max_body_bytes = 64;
  const Case cases[] = {
      {"get", "GET /healthz?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", 200},
      {"post", "POST /v1/completions HTTP/1.1\r\nContent-Length: 2\r\nAuthorization: Bearer k\r\n\r\n{}",
       200},
      {"chunked", "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 200},
      {"body over limit", "POST /a HTTP/1.1\r\nContent-Length: 65\r\n\r\n", 413},
      {"chunked over limit",
       "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n" + std::string(65, 'x') +
           "\r\n0\r\n\r\n",
       413},
      {"header over limit", "GET / HTTP/1.1\r\nX: " + std::string(2000, 'a') + "\r\n\r\n", 431},
      {"bad version", "GET / HTTP/9\r\n\r\n", 400},
      {"bad method token", "G(T / HTTP/1.1\r\n\r\n", 400},
      {"incomplete", "GET / HTTP/1.1\r\nHost:", 0},
      {"short body", "POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}", 0},
      {"percent-encoded path", "GET /v1/%6Dodels HTTP/1.1\r\nHost: a\r\n\r\n", 200},
      {"malformed percent-encoding", "GET /v1/models%2 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
  };
  for (const Case& c : cases) {
    absl::StatusOr<HttpRequest> request = ParseHttpRequest(c.bytes, limits);
    if (c.http_status == 200) {
      ASSERT_TRUE(request.ok()) << c.name << ": " << request.status();
    } else if (c.http_status == 0) {
      EXPECT_EQ(request.status().code(), absl::StatusCode::kOutOfRange) << c.name << ": " << request.status();
    } else {
      ASSERT_FALSE(request.ok()) << c.name;
      EXPECT_EQ(HttpStatusOf(request.status()), c.http_status) << c.name << ": " << request.status();
    }
  }
  absl::StatusOr<HttpRequest> post = ParseHttpRequest(cases[1].bytes, limits);
  EXPECT_EQ(post->method, "POST");
  EXPECT_EQ(post->path, "/v1/completions");
  EXPECT_EQ(post->authorization, "Bearer k");
  EXPECT_EQ(post->body, "{}");
  EXPECT_EQ(ParseHttpRequest(cases[0].bytes, limits)->path, "/healthz");
  EXPECT_EQ(ParseHttpRequest(cases[10].bytes, limits)->path, "/v1/models");
}

}  // namespace
}  // namespace doze::gateway

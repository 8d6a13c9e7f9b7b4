#include "gateway/http/http_server.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/gateway/http_test_client.h"

namespace doze::gateway {
namespace {

using testing::Fetch;
using ::testing::HasSubstr;
using testing::SendRaw;

constexpr int kBigChunks = 256;

// Chunk `i` of /big: 64 KiB of one letter.
std::string BigChunk(int i) { return std::string(64 << 10, static_cast<char>('a' + i % 26)); }

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.Add("POST", "/echo", [](HttpRequest request, std::shared_ptr<ResponseChannel> channel) {
      channel->Send(MakeResponse(200, request.body, "text/plain"));
    });
    router_.Add("GET", "/stream", [](HttpRequest, std::shared_ptr<ResponseChannel> channel) {
      channel->StartStream("text/event-stream");
      for (int i = 0; i < 3; ++i) channel->Write("data: " + std::to_string(i) + "\n\n");
      channel->EndStream();
    });
    router_.Add("POST", "/hang", [this](HttpRequest, std::shared_ptr<ResponseChannel> channel) {
      channel->OnClientGone([this] {
        if (!gone_once_.exchange(true)) client_gone_.Notify();
      });
      // Requests of different connections run on different threads; the channel held before is let go.
      absl::MutexLock lock(&held_mu_);
      held_.swap(channel);
    });
    router_.Add("GET", "/big", [this](HttpRequest, std::shared_ptr<ResponseChannel> channel) {
      // Written from another thread, as gRPC's thread answers, faster than the client reads.
      writer_ = std::thread([channel] {
        channel->StartStream("application/octet-stream");
        for (int i = 0; i < kBigChunks; ++i) channel->Write(BigChunk(i));
        channel->EndStream();
      });
    });
    HttpLimits limits;
    limits.max_body_bytes = 1 << 20;
    limits.max_header_bytes = 8 << 10;
    limits.header_timeout = absl::Milliseconds(300);
    limits.body_timeout = absl::Milliseconds(300);
    limits.max_connections = 8;
    server_ = std::make_unique<HttpServer>(io_, limits, &router_);
    absl::StatusOr<uint16_t> port = server_->Start("127.0.0.1", 0);
    ASSERT_TRUE(port.ok()) << port.status();
    port_ = *port;
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }

  void TearDown() override {
    if (writer_.joinable()) writer_.join();
    {
      absl::MutexLock lock(&held_mu_);
      held_.reset();
    }
    server_->StopAccepting();
    io_.stop();
    for (std::thread& thread : threads_) thread.join();
  }

  boost::asio::io_context io_;
  Router router_;
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
  std::vector<std::thread> threads_;
  std::atomic<bool> gone_once_{false};
  absl::Notification client_gone_;
  absl::Mutex held_mu_;
  std::shared_ptr<ResponseChannel> held_ ABSL_GUARDED_BY(held_mu_);  // the last /hang request's
  std::thread writer_;
};

TEST_F(HttpServerTest, EchoesABody) {
  testing::TestResponse response = Fetch(port_, "POST", "/echo", "hello");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "hello");
}

TEST_F(HttpServerTest, UnknownPathIs404AndWrongMethod405) {
  EXPECT_EQ(Fetch(port_, "GET", "/nowhere").status, 404);
  testing::TestResponse response = Fetch(port_, "GET", "/echo");
  EXPECT_EQ(response.status, 405);
  EXPECT_THAT(response.body, HasSubstr("\"error\""));
  EXPECT_THAT(response.body, HasSubstr("\"invalid_request_error\""));  // the client's error, not the server's
  EXPECT_EQ(response.headers["allow"], "POST");
}

TEST_F(HttpServerTest, StreamsChunks) {
  testing::TestResponse response = Fetch(port_, "GET", "/stream");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.headers["content-type"], "text/event-stream");
  EXPECT_EQ(testing::SseData(response.body), (std::vector<std::string>{"0", "1", "2"}));
}

// An HTTP/1.0 client knows no chunked encoding: its stream is the data itself, ended by the server closing
// the connection; its whole responses keep the connection only when it asked, and say so.
TEST_F(HttpServerTest, Http10StreamIsUnchunkedAndEndsWithTheConnection) {
  std::string raw = SendRaw(port_, "GET /stream HTTP/1.0\r\n\r\n");
  ASSERT_THAT(raw, HasSubstr(" 200 "));
  const size_t body = raw.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos);
  const std::string header = raw.substr(0, body);
  EXPECT_THAT(header, ::testing::Not(HasSubstr("chunked")));
  EXPECT_THAT(header, HasSubstr("Connection: close"));
  EXPECT_EQ(testing::SseData(raw.substr(body + 4)), (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_THAT(raw.substr(body + 4), ::testing::Not(HasSubstr("0\r\n\r\n")));  // no last-chunk marker

  std::string one = "POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\na";
  std::string two = "POST /echo HTTP/1.0\r\nContent-Length: 1\r\n\r\nb";
  std::string both = SendRaw(port_, one + two);
  EXPECT_THAT(both, HasSubstr("Connection: keep-alive\r\n"));
  EXPECT_THAT(both, HasSubstr("\r\n\r\na"));
  EXPECT_THAT(both, HasSubstr("\r\n\r\nb"));
}

// HEAD is GET's header without a body, whole or streamed, and the connection serves the next request.
TEST_F(HttpServerTest, HeadAnswersGetsHeaderWithoutABody) {
  std::string raw =
      SendRaw(port_,
              "HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n"
              "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nz");
  ASSERT_THAT(raw, ::testing::StartsWith("HTTP/1.1 200"));
  const size_t first_end = raw.find("\r\n\r\n");
  ASSERT_NE(first_end, std::string::npos);
  EXPECT_THAT(raw.substr(first_end + 4), ::testing::StartsWith("HTTP/1.1 200"));  // no body before it
  EXPECT_THAT(raw, ::testing::EndsWith("\r\n\r\nz"));
  testing::TestResponse wrong = Fetch(port_, "PUT", "/stream");
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(wrong.headers["allow"], "GET, HEAD");
}

// One raw request each, and what the server answers: the status line and a part of the answer.
TEST_F(HttpServerTest, RawRequestsGetTheirAnswers) {
  struct Raw {
    const char* name;
    std::string request;
    const char* status_line;
    const char* part;
  };
  const Raw table[] = {
      // A request target in absolute form (RFC 9112 3.2.2) routes by its path.
      {"absolute form",
       "POST http://example.test/echo?x=1 HTTP/1.1\r\nHost: example.test\r\nContent-Length: 2\r\n"
       "Connection: close\r\n\r\nhi",
       "HTTP/1.1 200", "\r\n\r\nhi"},
      // Percent-encoded octets are decoded before routing (RFC 3986 2.1), as nginx does.
      {"percent-encoded path",
       "POST /%65ch%6F HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
       "HTTP/1.1 200", "\r\n\r\nhi"},
      {"malformed percent-encoding", "GET /stream%zz HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400",
       "malformed percent-encoding"},
      {"malformed chunked body",
       "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
       "HTTP/1.1 400", "malformed request body"},
      // Only the chunked coding is decoded: a body in another is refused, not read as its coded bytes.
      {"gzip coding",
       "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
       "HTTP/1.1 501", "only chunked"},
      {"gzip body", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\nhi",
       "HTTP/1.1 415", "is not supported: send the body uncompressed"},
      {"identity body",
       "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Encoding: identity\r\nContent-Length: 2\r\n"
       "Connection: close\r\n\r\nhi",
       "HTTP/1.1 200", "\r\n\r\nhi"},
      // RFC 9112 2.2: an empty line before the request line is ignored, after a body as before the first.
      {"empty line after a body",
       "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi\r\n"
       "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye",
       "HTTP/1.1 200", "\r\n\r\nbye"},
      {"chunked in capitals",
       "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: Chunked\r\n\r\n"
       "5\r\nhello\r\n0\r\n\r\n",
       "HTTP/1.1 200", "\r\n\r\nhello"},
      // HTTP/1.1 requires Host (RFC 9112 3.2); HTTP/1.0 does not
      // (Http10StreamIsUnchunkedAndEndsWithTheConnection).
      {"no host", "GET /stream HTTP/1.1\r\n\r\n", "HTTP/1.1 400", "Host header"},
      {"body over the limit, before it is read",
       "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\nabc", "HTTP/1.1 413", "limit"},
      {"huge header", "GET /stream HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n",
       "HTTP/1.1 431", "too large"},
      {"malformed request", "GET / HTTP/9\r\n\r\n", "HTTP/1.1 400", "malformed"},
  };
  for (const Raw& raw : table) {
    const std::string answer = SendRaw(port_, raw.request);
    EXPECT_THAT(answer, ::testing::StartsWith(raw.status_line)) << raw.name << ": " << answer;
    EXPECT_THAT(answer, HasSubstr(raw.part)) << raw.name << ": " << answer;
  }
}

TEST_F(HttpServerTest, SlowHeaderIsCutOff) {
  auto start = std::chrono::steady_clock::now();
  std::string raw = SendRaw(port_, "GET /stream HTTP/1.1\r\nHost: x\r\n", /*timeout_ms=*/5000);
  EXPECT_EQ(raw, "");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST_F(HttpServerTest, SlowBodyIsCutOff) {
  auto start = std::chrono::steady_clock::now();
  std::string raw = SendRaw(port_, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", 5000);
  EXPECT_EQ(raw, "");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST_F(HttpServerTest, ConnectionsOverTheLimitAreClosed) {
  std::vector<std::unique_ptr<testing::StreamingRequest>> held;
  for (int i = 0; i < 8; ++i) held.push_back(std::make_unique<testing::StreamingRequest>(port_, "/hang", ""));
  for (int i = 0; i < 100 && server_->num_connections() < 8; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(server_->num_connections(), 8);
  EXPECT_EQ(Fetch(port_, "GET", "/stream", "", {}, 2000).status, 0);
  held.clear();
  for (int i = 0; i < 100 && server_->num_connections() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(Fetch(port_, "GET", "/stream").status, 200);
}

TEST_F(HttpServerTest, ClientLeavingIsNoticedWhileWaiting) {
  testing::StreamingRequest request(port_, "/hang", "");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  request.Close();
  EXPECT_TRUE(client_gone_.WaitForNotificationWithTimeout(absl::Seconds(5)));
}

TEST_F(HttpServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  std::string one = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na";
  std::string two = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nb";
  std::string raw = SendRaw(port_, one + two);
  EXPECT_THAT(raw, HasSubstr("\r\n\r\na"));
  EXPECT_THAT(raw, HasSubstr("\r\n\r\nb"));
}

TEST_F(HttpServerTest, StreamFasterThanTheClientArrivesWholeAndInOrder) {
  testing::TestResponse response = Fetch(port_, "GET", "/big");
  ASSERT_EQ(response.status, 200);
  std::string expected;
  for (int i = 0; i < kBigChunks; ++i) expected += BigChunk(i);
  EXPECT_EQ(response.body.size(), expected.size());
  EXPECT_TRUE(response.body == expected);
}

TEST_F(HttpServerTest, ServesConnectionsOnItsOwnLoops) {
  HttpLimits limits;
  HttpServer server(io_, limits, &router_, /*num_loops=*/2);
  absl::StatusOr<uint16_t> port = server.Start("127.0.0.1", 0);
  ASSERT_TRUE(port.ok()) << port.status();
  for (int i = 0; i < 4; ++i) {  // Connections land on both loops.
    testing::TestResponse echo = Fetch(*port, "POST", "/echo", "hello");
    EXPECT_EQ(echo.status, 200);
    EXPECT_EQ(echo.body, "hello");
  }
  testing::TestResponse stream = Fetch(*port, "GET", "/stream");
  EXPECT_EQ(stream.status, 200);
  EXPECT_THAT(stream.body, HasSubstr("data: 2"));
  std::string one = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na";
  std::string two = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nb";
  std::string raw = SendRaw(*port, one + two);
  EXPECT_THAT(raw, HasSubstr("\r\n\r\na"));
  EXPECT_THAT(raw, HasSubstr("\r\n\r\nb"));
  server.StopAccepting();
}

// A server stopped right after it has accepted a connection: the accept's handler (which starts the next
// accept) and the close StopAccepting posts run on the io_context's two threads, and must not run at once.
TEST_F(HttpServerTest, StopsAcceptingSafelyRightAfterAConnection) {
  for (int i = 0; i < 200; ++i) {
    HttpServer server(io_, HttpLimits{}, &router_, /*num_loops=*/1);
    absl::StatusOr<uint16_t> port = server.Start("127.0.0.1", 0);
    ASSERT_TRUE(port.ok()) << port.status();
    ASSERT_EQ(Fetch(*port, "POST", "/echo", "x").status, 200);
    server.StopAccepting();
  }
}

}  // namespace
}  // namespace doze::gateway

// doze_gateway_load: measures the latency doze-gateway adds (end to end minus the worker's own reported
// total_ms) under an open-loop request rate of short completions, or under many concurrent streams.
//
//   doze_gateway_load --port P --mode rate --rate 1000 --seconds 10 --connections 64 [--function F]
//   doze_gateway_load --port P --mode streams --streams 200 --seconds 10 --max-tokens 32
//   [--gateway-pid PID]: also report the CPU the gateway used during the measured window, in cores, and its
//   threads' context switches per request (each thread hand-off on a request's path costs at least one).
//   [--stamped-tokens 1] (streams): the worker (doze-fake-worker with DOZE_FAKE_STAMP_TOKENS=1) writes each
//   token's text as "t<i>@<ns> ", <ns> the wall-clock time it handed the token to gRPC; each SSE chunk's
//   delta.content is parsed as it arrives and the arrival time (CLOCK_REALTIME, same host) minus the stamp is
//   the latency the gateway added to that message ("message_added_ms"). A content that is not exactly one
//   stamp, a token out of order or a stream without its max_tokens stamps counts in "message_stamp_errors"
//   (and the exit status is 1), so a chunk split or merged on the way cannot pass unnoticed. The streams mode
//   also reads the gateway's /metrics before and after the test and reports the p50/p99 of its
//   doze_stream_message_gateway_seconds histogram over the test (interpolated within the buckets, as
//   Prometheus' histogram_quantile does): each message's time inside the gateway, from its gRPC completion to
//   its SSE bytes on the socket ("message_gateway_p50_ms", "message_gateway_p99_ms"; null if the gateway
//   has no such histogram).
//   [--direct-worker unix:PATH] (streams, with --stamped-tokens 1): after the test through the gateway, runs
//   the same pattern (--streams calls of --max-tokens tokens, back to back, for --seconds) straight over gRPC
//   to that worker, on one GenerateStream read by one completion-queue thread as the gateway reads it, and
//   reports the time from each token's stamp to its response taken off the completion queue
//   ("message_direct_p50_ms", ...): the worker's send and a gRPC receive with no gateway in between. The
//   calls first start spread evenly over [--direct-spread-ms 20] (one token period of the bench's streams).
//   In the rate mode, --direct-worker runs the rate test's schedule (--rate calls a second of --max-tokens
//   tokens, for --seconds) straight over gRPC to the worker after the test through the gateway, and reports
//   each call's end (its last event off the completion queue) less its start and the worker's total_ms
//   ("direct_added_ms"): the worker hop alone, which the gateway's added time also holds.
//   [--stream-threads T] (streams): T threads each drive their share of the streams on one epoll set (as wrk
//   and most clients do); 0 (the default): one blocking thread per stream.
//   [--poll-reads 1] (with --stream-threads): the event-loop threads poll their epoll sets (a zero timeout)
//   instead of sleeping in them, so the gateway's sends wake no reader. On one host a loopback send runs the
//   reader's receive path and its wake-up on the sending core, which on a network happen on the client's
//   machine; polling takes the wake-up off the gateway's cores (bench/loopback_send.cc measures it alone).
//   [--start-spread-ms S] (streams): stream i sends its first request at S * i / streams
//   ms instead of all at once, as independent users do; with calls of equal length the streams then stay
//   spread (the default 0 keeps them in lock-step: they all end, and all ask again, together).
//
// Rate mode paces each keep-alive connection on a fixed schedule and measures from the scheduled send time,
// so a slow gateway cannot hide its delay by slowing the load down. Prints one JSON line of percentiles (ms).
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "grpcpp/alarm.h"
#include "grpcpp/grpcpp.h"
#include "proto/worker.grpc.pb.h"
#include "worker/common/proc_stat.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int port = 8080;
  std::string mode = "rate";
  double rate = 1000;
  double seconds = 10;
  int connections = 64;
  int streams = 200;
  int max_tokens = 1;
  std::string function = "copy_polish";
  int gateway_pid = 0;  // 0: do not measure the gateway's CPU.
  bool stamped_tokens = false;
  int stream_threads = 0;        // --stream-threads: event-loop threads for the streams; 0: a thread each.
  std::string direct_worker;     // --direct-worker: the worker's gRPC address for the direct baseline.
  double direct_spread_ms = 20;  // --direct-spread-ms: over how long the direct calls first start.
  double start_spread_ms = 0;    // --start-spread-ms: over how long the streams first start (0: at once).
  bool poll_reads = false;       // --poll-reads: the event loops poll instead of sleeping.
};

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--port")
      options.port = std::atoi(value.c_str());
    else if (flag == "--mode")
      options.mode = value;
    else if (flag == "--rate")
      options.rate = std::atof(value.c_str());
    else if (flag == "--seconds")
      options.seconds = std::atof(value.c_str());
    else if (flag == "--connections")
      options.connections = std::atoi(value.c_str());
    else if (flag == "--streams")
      options.streams = std::atoi(value.c_str());
    else if (flag == "--max-tokens")
      options.max_tokens = std::atoi(value.c_str());
    else if (flag == "--function")
      options.function = value;
    else if (flag == "--gateway-pid")
      options.gateway_pid = std::atoi(value.c_str());
    else if (flag == "--stamped-tokens")
      options.stamped_tokens = std::atoi(value.c_str()) != 0;
    else if (flag == "--stream-threads")
      options.stream_threads = std::atoi(value.c_str());
    else if (flag == "--direct-worker")
      options.direct_worker = value;
    else if (flag == "--direct-spread-ms")
      options.direct_spread_ms = std::atof(value.c_str());
    else if (flag == "--start-spread-ms")
      options.start_spread_ms = std::atof(value.c_str());
    else if (flag == "--poll-reads")
      options.poll_reads = std::atoi(value.c_str()) != 0;
  }
  return options;
}

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string Request(const Options& options, bool stream) {
  std::string body =
      "{\"model\":\"" + options.function +
      "\",\"messages\":[{\"role\":\"user\",\"content\":\"把这段产品描述改得更有吸引力\"}],\"max_tokens\":" +
      std::to_string(options.max_tokens) + (stream ? ",\"stream\":true}" : "}");
  return "POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: "
         "application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// The wall-clock time, nanoseconds since the epoch (the stamps' clock).
int64_t RealtimeNanos() {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

// Returns the stamp of `content` if it is exactly "t<index>@<digits> ", else -1.
int64_t ParseStamp(std::string_view content, int index) {
  char buffer[16];
  std::string_view prefix(buffer, std::snprintf(buffer, sizeof(buffer), "t%d@", index));
  if (content.size() < prefix.size() + 2 || content.substr(0, prefix.size()) != prefix ||
      content.back() != ' ')
    return -1;
  std::string_view digits = content.substr(prefix.size(), content.size() - prefix.size() - 1);
  if (digits.size() > 19) return -1;  // Nanoseconds since the epoch: 19 digits until 2286.
  uint64_t stamp = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return -1;
    stamp = stamp * 10 + static_cast<uint64_t>(c - '0');
  }
  return stamp > static_cast<uint64_t>(INT64_MAX) ? -1 : static_cast<int64_t>(stamp);
}

// Reads the stamped tokens ("t<i>@<ns> ") of one streamed response as its bytes arrive: each chunk's
// delta.content must be exactly the next token's stamp (the role chunk's empty content aside).
class StampReader {
 public:
  explicit StampReader(std::vector<double>* added_ms) : added_ms_(added_ms) {}

  void Reset() { scan_ = 0, next_index_ = 0; }

  // Parses the contents complete in `buffer` past those already parsed; `received_ns`: when their bytes came.
  void Parse(const std::string& buffer, int64_t received_ns) {
    static constexpr std::string_view kKey = "\"content\":\"";
    while (true) {
      size_t at = buffer.find(kKey, scan_);
      if (at == std::string::npos) {
        scan_ = std::max(scan_, buffer.size() >= kKey.size() ? buffer.size() - kKey.size() + 1 : 0);
        return;
      }
      size_t begin = at + kKey.size(), end = buffer.find('"', begin);
      if (end == std::string::npos) {
        scan_ = at;  // The content is not all here yet.
        return;
      }
      scan_ = end + 1;
      if (end == begin) continue;  // The role chunk.
      std::string_view content(buffer.data() + begin, end - begin);
      int64_t stamp = ParseStamp(content, next_index_);
      if (stamp < 0) {
        Error("content \"" + std::string(content.substr(0, 200)) + "\" where t" +
              std::to_string(next_index_) + "@NS was expected");
        continue;
      }
      ++next_index_;
      added_ms_->push_back(static_cast<double>(received_ns - stamp) / 1e6);
    }
  }

  // Ends a response that should have held `tokens` stamps.
  void Finish(int tokens) {
    if (next_index_ != tokens) {
      Error("a stream ended after " + std::to_string(next_index_) + " of " + std::to_string(tokens) +
            " stamps");
    }
  }

  int errors() const { return errors_; }

 private:
  // Counts a stamp error; prints the first few.
  void Error(const std::string& what) {
    if (errors_++ < 5) std::fprintf(stderr, "doze_gateway_load: stamped tokens: %s\n", what.c_str());
  }

  std::vector<double>* const added_ms_;
  size_t scan_ = 0;
  int next_index_ = 0;
  int errors_ = 0;
};

// Whether `buffer` holds a whole response (its Content-Length body, or its chunked stream to the last chunk):
// then the worker's total_ms, or a negative number for a response that is not a 200 with one; nullopt while
// more is to come.
std::optional<double> CompleteResponse(const std::string& buffer) {
  size_t header_end = buffer.find("\r\n\r\n");
  if (header_end == std::string::npos) return std::nullopt;
  if (buffer.compare(0, 12, "HTTP/1.1 200") != 0) return -1;
  size_t length_at = buffer.find("Content-Length: ");
  bool complete = false;
  if (length_at != std::string::npos && length_at < header_end) {
    complete = buffer.size() >= header_end + 4 + std::strtoul(buffer.c_str() + length_at + 16, nullptr, 10);
  } else {
    complete = buffer.find("\r\n0\r\n\r\n", header_end) != std::string::npos;
  }
  if (!complete) return std::nullopt;
  size_t at = buffer.rfind("\"worker_total_ms\":");
  return at == std::string::npos ? -1 : std::strtod(buffer.c_str() + at + 18, nullptr);
}

// Reads one response on a keep-alive connection. Returns the worker's total_ms, or a negative number on
// failure. With `stamps`, parses the stamped tokens as they arrive.
double ReadResponse(int fd, std::string* buffer, StampReader* stamps = nullptr) {
  buffer->clear();
  if (stamps != nullptr) stamps->Reset();
  char chunk[65536];
  while (true) {
    if (std::optional<double> worker = CompleteResponse(*buffer)) return *worker;
    ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) return -1;
    int64_t received_ns = stamps != nullptr ? RealtimeNanos() : 0;
    buffer->append(chunk, static_cast<size_t>(n));
    if (stamps != nullptr) stamps->Parse(*buffer, received_ns);
  }
}

struct Results {
  std::mutex mu;
  std::vector<double> added_ms;
  std::vector<double> total_ms;
  std::vector<double> message_added_ms;  // --stamped-tokens: per streamed message.
  std::atomic<int> errors{0};
  std::atomic<int> stamp_errors{0};

  void Add(double total, double worker) {
    std::lock_guard<std::mutex> lock(mu);
    total_ms.push_back(total);
    added_ms.push_back(std::max(0.0, total - worker));
  }

  void AddMessages(const std::vector<double>& added, int errors) {
    std::lock_guard<std::mutex> lock(mu);
    message_added_ms.insert(message_added_ms.end(), added.begin(), added.end());
    stamp_errors += errors;
  }
};

double Millis(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// One connection of the rate mode: sends on its schedule until the deadline.
void RateLoop(const Options& options, int index, Clock::time_point start, Results* results) {
  int fd = Connect(options.port);
  if (fd < 0) return void(results->errors++);
  std::string request = Request(options, false), buffer;
  auto interval = std::chrono::duration<double>(options.connections / options.rate);
  auto first =
      start + std::chrono::duration_cast<Clock::duration>(interval * (double(index) / options.connections));
  auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.seconds));
  for (int i = 0;; ++i) {
    auto scheduled = first + std::chrono::duration_cast<Clock::duration>(interval * i);
    if (scheduled >= end) break;
    std::this_thread::sleep_until(scheduled);
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) break;
    double worker = ReadResponse(fd, &buffer);
    if (worker < 0) {
      results->errors++;
      break;
    }
    results->Add(Millis(Clock::now() - scheduled), worker);
  }
  close(fd);
}

// When stream `index` of the streams mode sends its first request: spread evenly over --start-spread-ms.
Clock::time_point FirstSend(const Options& options, Clock::time_point start, int index) {
  return start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(
                     options.start_spread_ms * index / options.streams));
}

// One stream of the streams mode: opens streaming requests back to back from `first` until the deadline.
void StreamLoop(const Options& options, Clock::time_point first, Clock::time_point end, Results* results) {
  int fd = Connect(options.port);
  if (fd < 0) return void(results->errors++);
  std::this_thread::sleep_until(first);
  std::string request = Request(options, true), buffer;
  std::vector<double> message_added_ms;
  StampReader stamps(&message_added_ms);
  while (Clock::now() < end) {
    auto sent = Clock::now();
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) break;
    double worker = ReadResponse(fd, &buffer, options.stamped_tokens ? &stamps : nullptr);
    if (worker < 0) {
      results->errors++;
      break;
    }
    results->Add(Millis(Clock::now() - sent), worker);
    if (options.stamped_tokens) stamps.Finish(options.max_tokens);
  }
  close(fd);
  results->AddMessages(message_added_ms, stamps.errors());
}

// The streams of one event-loop thread (--stream-threads): `count` connections on one epoll set, each sending
// its next streaming request as soon as the last one has ended, until the deadline. A chunk's arrival time is
// taken as its recv() returns, as in StreamLoop, but one thread serves many sockets, as wrk and most clients
// do, instead of a thread blocked on each. Its j-th connection sends its first request at first(j) (the
// thread's starts interleaved with the other threads' over --start-spread-ms). With --poll-reads it never
// sleeps: epoll_wait returns at once and is called again.
void EventStreamLoop(const Options& options, int count, const std::function<Clock::time_point(int)>& first,
                     Clock::time_point end, Results* results) {
  struct Stream {
    int fd = -1;
    std::string buffer;
    StampReader stamps;
    Clock::time_point sent;
    Clock::time_point first;
  };
  const std::string request = Request(options, true);
  std::vector<double> message_added_ms;
  std::vector<std::unique_ptr<Stream>> streams;
  const int epoll = epoll_create1(0);
  auto send_request = [&](Stream& stream) {
    stream.buffer.clear();
    stream.stamps.Reset();
    stream.sent = Clock::now();
    return send(stream.fd, request.data(), request.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(request.size());
  };
  auto close_stream = [&](Stream& stream) {
    epoll_ctl(epoll, EPOLL_CTL_DEL, stream.fd, nullptr);
    close(stream.fd);
    stream.fd = -1;
  };
  int open = 0;  // connected, started or waiting to
  for (int i = 0; i < count; ++i) {
    auto stream = std::make_unique<Stream>(
        Stream{Connect(options.port), {}, StampReader(&message_added_ms), {}, first(i)});
    if (stream->fd < 0) {
      results->errors++;
      continue;
    }
    fcntl(stream->fd, F_SETFL, fcntl(stream->fd, F_GETFL) | O_NONBLOCK);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.ptr = stream.get();
    epoll_ctl(epoll, EPOLL_CTL_ADD, stream->fd, &event);
    ++open;
    streams.push_back(std::move(stream));
  }
  size_t next_start = 0;  // the streams start in order of their first()
  // Sends the first request of every stream whose time has come; returns the milliseconds to the next start.
  auto start_due = [&]() -> int {
    for (; next_start < streams.size(); ++next_start) {
      Stream& stream = *streams[next_start];
      const Clock::time_point now = Clock::now();
      if (stream.first > now) {
        return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(stream.first - now).count());
      }
      if (!send_request(stream)) {
        results->errors++;
        close_stream(stream);
        --open;
      }
    }
    return 1000;
  };
  char chunk[65536];
  epoll_event events[64];
  // A gateway that stops answering fails the streams still open 30 s past the deadline instead of hanging.
  const Clock::time_point give_up = end + std::chrono::seconds(30);
  while (open > 0) {
    if (Clock::now() > give_up) {
      for (const auto& stream : streams) {
        if (stream->fd < 0) continue;
        results->errors++;
        close_stream(*stream);
      }
      break;
    }
    const int next_start_ms = start_due();
    const int ready = epoll_wait(epoll, events, 64, options.poll_reads ? 0 : std::min(next_start_ms, 1000));
    for (int e = 0; e < ready; ++e) {
      Stream& stream = *static_cast<Stream*>(events[e].data.ptr);
      bool failed = false;
      while (true) {
        ssize_t n = recv(stream.fd, chunk, sizeof(chunk), 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n <= 0) {
          failed = true;
          break;
        }
        const int64_t received_ns = options.stamped_tokens ? RealtimeNanos() : 0;
        stream.buffer.append(chunk, static_cast<size_t>(n));
        if (options.stamped_tokens) stream.stamps.Parse(stream.buffer, received_ns);
      }
      std::optional<double> worker = CompleteResponse(stream.buffer);
      if (!failed && !worker.has_value()) continue;
      if (failed || *worker < 0) {
        results->errors++;
      } else {
        results->Add(Millis(Clock::now() - stream.sent), *worker);
        if (options.stamped_tokens) stream.stamps.Finish(options.max_tokens);
        if (Clock::now() < end && send_request(stream)) continue;
      }
      close_stream(stream);
      --open;
    }
  }
  close(epoll);
  int stamp_errors = 0;
  for (const auto& stream : streams) stamp_errors += stream->stamps.errors();
  results->AddMessages(message_added_ms, stamp_errors);
}

// The CPU time (user + system, seconds) process `pid` has used so far, or a negative number.
double GatewayCpuSeconds(int pid) { return pid > 0 ? doze::ProcessCpuSeconds(pid).value_or(-1) : -1; }

// Returns the context switches (voluntary and not) of every thread of process `pid` so far, or -1.
int64_t ProcessContextSwitches(int pid) {
  std::error_code error;
  std::filesystem::directory_iterator tasks("/proc/" + std::to_string(pid) + "/task", error);
  if (pid <= 0 || error) return -1;
  int64_t switches = 0;
  for (const auto& task : tasks) {
    std::ifstream status(task.path() / "status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.find("ctxt_switches:") != std::string::npos) {
        switches += std::strtoll(line.c_str() + line.find(':') + 1, nullptr, 10);
      }
    }
  }
  return switches;
}

double Percentile(std::vector<double>& values, double p) {
  if (values.empty()) return 0;
  size_t index = std::min(values.size() - 1, static_cast<size_t>(p * values.size()));
  std::nth_element(values.begin(), values.begin() + index, values.end());
  return values[index];
}

// The p50, p90, p99, p99.9 and max of `values` as a JSON object (three decimals).
std::string PercentilesJson(std::vector<double>& values) {
  char text[160];
  std::snprintf(text, sizeof(text), "{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}",
                Percentile(values, 0.5), Percentile(values, 0.9), Percentile(values, 0.99),
                Percentile(values, 0.999), Percentile(values, 1.0));
  return text;
}

// Returns the body of GET /metrics, or "" when it cannot be read.
std::string FetchMetrics(int port) {
  int fd = Connect(port);
  if (fd < 0) return "";
  std::string request = "GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n", response;
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
    char chunk[65536];
    for (ssize_t n; (n = recv(fd, chunk, sizeof(chunk), 0)) > 0;)
      response.append(chunk, static_cast<size_t>(n));
  }
  close(fd);
  size_t body = response.find("\r\n\r\n");
  if (response.compare(0, 12, "HTTP/1.1 200") != 0 || body == std::string::npos) return "";
  return response.substr(body + 4);
}

// The cumulative bucket counts of histogram `name` in Prometheus text, summed over its label sets, by upper
// bound (+Inf as infinity). Empty when the histogram is not there.
std::vector<std::pair<double, double>> HistogramBuckets(const std::string& text, const std::string& name) {
  std::vector<std::pair<double, double>> buckets;  // Sorted by bound.
  std::istringstream lines(text);
  std::string line, prefix = name + "_bucket{";
  while (std::getline(lines, line)) {
    if (line.compare(0, prefix.size(), prefix) != 0) continue;
    size_t le = line.find("le=\""), close = line.rfind('}');
    if (le == std::string::npos || close == std::string::npos) continue;
    std::string bound_text = line.substr(le + 4, line.find('"', le + 4) - le - 4);
    double bound = bound_text == "+Inf" ? HUGE_VAL : std::strtod(bound_text.c_str(), nullptr);
    double count = std::strtod(line.c_str() + close + 1, nullptr);
    auto at = std::lower_bound(buckets.begin(), buckets.end(), std::make_pair(bound, -HUGE_VAL));
    if (at != buckets.end() && at->first == bound) {
      at->second += count;
    } else {
      buckets.insert(at, {bound, count});
    }
  }
  return buckets;
}

// The quantile `q` of the observations made between two readings of one histogram's buckets, interpolated
// linearly within its bucket as Prometheus' histogram_quantile does (the highest finite bound when it falls
// in +Inf). Negative when there are none.
double HistogramQuantile(const std::vector<std::pair<double, double>>& before,
                         const std::vector<std::pair<double, double>>& after, double q, double* count) {
  std::vector<std::pair<double, double>> delta = after;
  for (auto& [bound, cumulative] : delta) {
    for (const auto& [old_bound, old_cumulative] : before) {
      if (old_bound == bound) cumulative -= old_cumulative;
    }
  }
  *count = delta.empty() ? 0 : delta.back().second;
  if (*count <= 0) return -1;
  double rank = q * *count, lower = 0, below = 0;
  for (const auto& [bound, cumulative] : delta) {
    if (cumulative >= rank) {
      if (std::isinf(bound)) return lower;
      if (cumulative == below) return bound;
      return lower + (bound - lower) * (rank - below) / (cumulative - below);
    }
    lower = bound, below = cumulative;
  }
  return lower;
}

// The direct baseline: streams of stamped tokens (streams mode), or calls started on the rate test's schedule
// (rate mode), straight to the worker over gRPC, with the gateway's own way of reading them (one channel, one
// GenerateStream carrying every call, one thread on one completion queue).
class DirectStreams {
 public:
  DirectStreams(const Options& options) : options_(options) {
    channel_ = grpc::CreateChannel(options.direct_worker, grpc::InsecureChannelCredentials());
    stub_ = doze::v1::Worker::NewStub(channel_);
  }

  // Runs --streams calls back to back until --seconds have passed, or in the rate mode --rate calls a
  // second; returns the number of calls that failed.
  int Run() {
    channel_->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5));
    start_time_ = Clock::now();
    end_ = start_time_ +
           std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options_.seconds));
    active_ = rate_ ? 1 : options_.streams;  // the rate mode's schedule counts as one until it ends
    stream_ = stub_->PrepareAsyncGenerateStream(&context_, &cq_);
    stream_->StartCall(&started_);  // gRPC sends the header with its write operation: the first write
    writing_ = true;
    stream_->Read(&response_, &read_);
    // The calls' first starts spread evenly over --direct-spread-ms, as requests through the gateway reach
    // the worker spread over the time the gateway takes to read them; started all at once, every call's
    // tokens would come due together.
    std::vector<grpc::Alarm> alarms(rate_ ? 0 : options_.streams);
    if (rate_) schedule_.Set(&cq_, std::chrono::system_clock::now(), &start_);
    auto now = std::chrono::system_clock::now();
    for (int i = 0; i < static_cast<int>(alarms.size()); ++i) {
      alarms[i].Set(&cq_,
                    now + std::chrono::microseconds(
                              static_cast<int64_t>(options_.direct_spread_ms * 1000 * i / options_.streams)),
                    &start_);
    }
    void* tag = nullptr;
    bool ok = false;
    while (active_ > 0 && cq_.Next(&tag, &ok)) {
      int64_t received_ns = RealtimeNanos();
      if (tag == &start_) {
        rate_ ? StartScheduledCall() : StartCall();
      } else if (tag == &started_ || tag == &written_) {
        if (!ok) {
          Broken("write");
          continue;
        }
        writing_ = false;
        Write();
      } else if (tag == &read_) {
        if (!ok) {
          Broken("read");
          continue;
        }
        for (const doze::v1::CallEvent& event : response_.events()) Received(event, received_ns);
        stream_->Read(&response_, &read_);
      }
    }
    context_.TryCancel();
    cq_.Shutdown();
    while (cq_.Next(&tag, &ok)) {
    }
    return errors_;
  }

  std::vector<double>& added_ms() { return added_ms_; }
  int stamp_errors() const { return stamp_errors_; }

 private:
  // Counts every call still open as failed once the stream has broken; Run's loop then ends.
  void Broken(const char* what) {
    std::fprintf(stderr, "doze_gateway_load: direct: the stream's %s failed\n", what);
    errors_ += active_;
    active_ = 0;
  }

  // The rate mode: starts call number `scheduled_` (its alarm has fired) and sets the alarm for the next, or
  // ends the schedule. A call's time counts from its start, not from its alarm's due time (gRPC's alarms fire
  // up to a millisecond late).
  void StartScheduledCall() {
    const auto due = [this](int64_t n) {
      return start_time_ +
             std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(n / options_.rate));
    };
    ++active_;
    StartCall();
    const Clock::time_point next = due(++scheduled_);
    if (next >= end_) return void(--active_);
    schedule_.Set(&cq_, std::chrono::system_clock::now() + (next - Clock::now()), &start_);
  }

  void StartCall() {
    doze::v1::StreamCommand* command = queued_.add_commands();
    const uint64_t id = next_id_++;
    command->set_call_id(id);
    doze::v1::GenerateRequest* request = command->mutable_start();
    request->set_request_id("direct");
    for (int token : {151644, 872, 198, 104169, 151645}) request->mutable_token_ids()->add_ids(token);
    request->mutable_sampling()->set_max_tokens(options_.max_tokens);
    open_[id] = Open{0, Clock::now(), -1};
    Write();
  }

  // Sends the queued starts when no write is in flight.
  void Write() {
    if (writing_ || queued_.commands_size() == 0) return;
    outgoing_.Swap(&queued_);
    queued_.Clear();
    writing_ = true;
    stream_->Write(outgoing_, &written_);
  }

  void Received(const doze::v1::CallEvent& event, int64_t received_ns) {
    auto it = open_.find(event.call_id());
    if (it == open_.end()) return;
    int& next_index = it->second.next_index;
    if (rate_ && event.has_response()) {
      if (!event.response().text_delta().empty()) ++next_index;
      if (event.response().has_timings()) it->second.worker_ms = event.response().timings().total_ms();
    } else if (event.has_response()) {
      const std::string& text = event.response().text_delta();
      int64_t stamp = ParseStamp(text, next_index);
      if (stamp < 0) {
        if (stamp_errors_++ < 5) {
          std::fprintf(stderr, "doze_gateway_load: direct: text \"%s\" where t%d@NS was expected\n",
                       text.substr(0, 200).c_str(), next_index);
        }
      } else {
        ++next_index;
        added_ms_.push_back(static_cast<double>(received_ns - stamp) / 1e6);
      }
    }
    if (!event.has_status()) return;
    if (event.status().code() != 0 || next_index != options_.max_tokens) {
      ++errors_;
      if (errors_ <= 5) {
        std::fprintf(stderr, "doze_gateway_load: direct call ended with status %d (%s) after %d tokens\n",
                     event.status().code(), event.status().message().c_str(), next_index);
      }
    }
    if (rate_ && event.status().code() == 0 && it->second.worker_ms >= 0) {
      added_ms_.push_back(std::max(0.0, Millis(Clock::now() - it->second.started) - it->second.worker_ms));
    }
    open_.erase(it);
    // The next call of its slot starts, unless the time is up (the rate mode's calls keep their schedule).
    if (!rate_ && Clock::now() < end_) return StartCall();
    --active_;
  }

  const Options& options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<doze::v1::Worker::Stub> stub_;
  grpc::CompletionQueue cq_;
  grpc::ClientContext context_;
  std::unique_ptr<
      grpc::ClientAsyncReaderWriter<doze::v1::GenerateStreamRequest, doze::v1::GenerateStreamResponse>>
      stream_;
  doze::v1::GenerateStreamResponse response_;
  doze::v1::GenerateStreamRequest queued_;
  doze::v1::GenerateStreamRequest outgoing_;
  bool writing_ = false;
  // Tags: only their addresses matter.
  char start_ = 0, started_ = 0, written_ = 0, read_ = 0;
  uint64_t next_id_ = 1;
  // An open call: its next token index, its start and the worker's total_ms once told (rate mode).
  struct Open {
    int next_index;
    Clock::time_point started;
    double worker_ms;
  };
  std::unordered_map<uint64_t, Open> open_;
  const bool rate_ = options_.mode == "rate";
  grpc::Alarm schedule_;   // the rate mode's next start
  int64_t scheduled_ = 0;  // rate mode: calls started so far
  Clock::time_point start_time_;
  Clock::time_point end_;
  int active_ = 0;
  int errors_ = 0;
  int stamp_errors_ = 0;
  std::vector<double> added_ms_;
};

}  // namespace

int main(int argc, char** argv) {
  Options options = ParseOptions(argc, argv);
  if (options.poll_reads && (options.mode != "streams" || options.stream_threads <= 0)) {
    std::fprintf(stderr, "doze_gateway_load: --poll-reads needs --mode streams and --stream-threads\n");
    return 2;
  }
  Results results;
  std::vector<std::thread> threads;
  auto start = Clock::now() + std::chrono::milliseconds(100);
  std::this_thread::sleep_until(start - std::chrono::milliseconds(50));
  const std::string kMessageHistogram = "doze_stream_message_gateway_seconds";
  std::vector<std::pair<double, double>> message_buckets_before;
  if (options.mode == "streams")
    message_buckets_before = HistogramBuckets(FetchMetrics(options.port), kMessageHistogram);
  double cpu_before = GatewayCpuSeconds(options.gateway_pid);
  int64_t switches_before = ProcessContextSwitches(options.gateway_pid);
  if (options.mode == "rate") {
    for (int i = 0; i < options.connections; ++i) threads.emplace_back(RateLoop, options, i, start, &results);
  } else {
    auto end =
        start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.seconds));
    if (options.stream_threads > 0) {
      for (int i = 0; i < options.stream_threads; ++i) {
        const int count =
            options.streams / options.stream_threads + (i < options.streams % options.stream_threads);
        // Connection j of thread i is stream j * threads + i of the spread.
        auto first = [&options, start, i](int j) {
          return FirstSend(options, start, j * options.stream_threads + i);
        };
        threads.emplace_back(EventStreamLoop, options, count, first, end, &results);
      }
    } else {
      for (int i = 0; i < options.streams; ++i) {
        threads.emplace_back(StreamLoop, options, FirstSend(options, start, i), end, &results);
      }
    }
  }
  for (std::thread& thread : threads) thread.join();
  double elapsed = Millis(Clock::now() - start) / 1000;
  double cpu_after = GatewayCpuSeconds(options.gateway_pid);
  int64_t switches_after = ProcessContextSwitches(options.gateway_pid);
  size_t count = results.added_ms.size();
  char gateway_cores[32] = "null", switches_per_request[32] = "null";
  if (cpu_before >= 0 && cpu_after >= 0) {
    std::snprintf(gateway_cores, sizeof(gateway_cores), "%.3f", (cpu_after - cpu_before) / (elapsed + 0.05));
  }
  if (switches_before >= 0 && switches_after >= 0 && count > 0) {
    std::snprintf(switches_per_request, sizeof(switches_per_request), "%.2f",
                  static_cast<double>(switches_after - switches_before) / static_cast<double>(count));
  }
  std::string messages;
  if (options.stamped_tokens) {
    std::vector<double>& added = results.message_added_ms;
    messages = ",\"messages\":" + std::to_string(added.size()) +
               ",\"message_stamp_errors\":" + std::to_string(results.stamp_errors.load()) +
               ",\"message_added_ms\":" + PercentilesJson(added);
  }
  if (options.mode == "streams") {
    // The gateway's own share of each message, from its histogram over the test.
    std::vector<std::pair<double, double>> after =
        HistogramBuckets(FetchMetrics(options.port), kMessageHistogram);
    double observed = 0, p50 = HistogramQuantile(message_buckets_before, after, 0.5, &observed);
    double p99 = HistogramQuantile(message_buckets_before, after, 0.99, &observed);
    char line[256];
    if (after.empty() || p50 < 0) {
      std::snprintf(line, sizeof(line),
                    ",\"message_gateway_messages\":%.0f,\"message_gateway_p50_ms\":null,"
                    "\"message_gateway_p99_ms\":null",
                    observed);
    } else {
      std::snprintf(line, sizeof(line),
                    ",\"message_gateway_messages\":%.0f,\"message_gateway_p50_ms\":%.3f,"
                    "\"message_gateway_p99_ms\":%.3f",
                    observed, p50 * 1e3, p99 * 1e3);
    }
    messages += line;
  }
  int direct_failures = 0;
  if (options.mode == "rate" && !options.direct_worker.empty()) {
    DirectStreams direct(options);
    direct_failures = direct.Run();
    messages += ",\"direct_requests\":" + std::to_string(direct.added_ms().size()) +
                ",\"direct_errors\":" + std::to_string(direct_failures) +
                ",\"direct_added_ms\":" + PercentilesJson(direct.added_ms());
  }
  if (options.mode == "streams" && options.stamped_tokens && !options.direct_worker.empty()) {
    DirectStreams direct(options);
    int failed = direct.Run();
    std::vector<double>& added = direct.added_ms();
    direct_failures = failed + direct.stamp_errors();
    char line[320];
    std::snprintf(
        line, sizeof(line),
        ",\"message_direct_messages\":%zu,\"message_direct_errors\":%d,\"message_direct_p50_ms\":%.3f,"
        "\"message_direct_p90_ms\":%.3f,\"message_direct_p99_ms\":%.3f,\"message_direct_p999_ms\":%.3f,"
        "\"message_direct_max_ms\":%.3f",
        added.size(), direct_failures, Percentile(added, 0.5), Percentile(added, 0.9),
        Percentile(added, 0.99), Percentile(added, 0.999), Percentile(added, 1.0));
    messages += line;
  }
  std::printf(
      "{\"mode\":\"%s\",\"requests\":%zu,\"errors\":%d,\"achieved_rps\":%.1f,\"added_ms\":%s,"
      "\"end_to_end_ms\":{\"p50\":%.3f,\"p99\":%.3f},"
      "\"gateway_cpu_cores\":%s,\"gateway_context_switches_per_request\":%s%s}\n",
      options.mode.c_str(), count, results.errors.load(), count / elapsed,
      PercentilesJson(results.added_ms).c_str(), Percentile(results.total_ms, 0.5),
      Percentile(results.total_ms, 0.99), gateway_cores, switches_per_request, messages.c_str());
  return results.errors.load() == 0 && results.stamp_errors.load() == 0 && direct_failures == 0 ? 0 : 1;
}

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
//   (and the exit status is 1), so a chunk split or merged on the way cannot pass unnoticed.
//
// Rate mode paces each keep-alive connection on a fixed schedule and measures from the scheduled send time,
// so a slow gateway cannot hide its delay by slowing the load down. Prints one JSON line of percentiles (ms).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

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
      int64_t stamp = ParseStamp(content);
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
  // Returns the stamp of `content` if it is exactly "t<next index>@<digits> ", else -1.
  int64_t ParseStamp(std::string_view content) const {
    char buffer[16];
    std::string_view prefix(buffer, std::snprintf(buffer, sizeof(buffer), "t%d@", next_index_));
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

  // Counts a stamp error; prints the first few.
  void Error(const std::string& what) {
    if (errors_++ < 5) std::fprintf(stderr, "doze_gateway_load: stamped tokens: %s\n", what.c_str());
  }

  std::vector<double>* const added_ms_;
  size_t scan_ = 0;
  int next_index_ = 0;
  int errors_ = 0;
};

// Reads one response on a keep-alive connection: to the end of its Content-Length body, or of its chunked
// stream. Returns the worker's total_ms, or a negative number on failure. With `stamps`, parses the stamped
// tokens as they arrive.
double ReadResponse(int fd, std::string* buffer, StampReader* stamps = nullptr) {
  buffer->clear();
  if (stamps != nullptr) stamps->Reset();
  char chunk[65536];
  while (true) {
    size_t header_end = buffer->find("\r\n\r\n");
    if (header_end != std::string::npos) {
      if (buffer->compare(0, 12, "HTTP/1.1 200") != 0) return -1;
      size_t length_at = buffer->find("Content-Length: ");
      bool complete = false;
      if (length_at != std::string::npos && length_at < header_end) {
        complete =
            buffer->size() >= header_end + 4 + std::strtoul(buffer->c_str() + length_at + 16, nullptr, 10);
      } else {
        complete = buffer->find("\r\n0\r\n\r\n", header_end) != std::string::npos;
      }
      if (complete) {
        size_t at = buffer->rfind("\"worker_total_ms\":");
        return at == std::string::npos ? -1 : std::strtod(buffer->c_str() + at + 18, nullptr);
      }
    }
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

// One stream of the streams mode: opens streaming requests back to back until the deadline.
void StreamLoop(const Options& options, Clock::time_point end, Results* results) {
  int fd = Connect(options.port);
  if (fd < 0) return void(results->errors++);
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

// Returns the CPU time (user + system, seconds) process `pid` has used so far, or a negative number.
double ProcessCpuSeconds(int pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (pid <= 0 || !std::getline(file, line)) return -1;
  // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
  std::istringstream fields(line.substr(line.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int index = 3; index <= 15 && fields >> field; ++index) {
    if (index == 14 || index == 15) ticks += std::strtod(field.c_str(), nullptr);  // utime, stime
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

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

}  // namespace

int main(int argc, char** argv) {
  Options options = ParseOptions(argc, argv);
  Results results;
  std::vector<std::thread> threads;
  auto start = Clock::now() + std::chrono::milliseconds(100);
  std::this_thread::sleep_until(start - std::chrono::milliseconds(50));
  double cpu_before = ProcessCpuSeconds(options.gateway_pid);
  int64_t switches_before = ProcessContextSwitches(options.gateway_pid);
  if (options.mode == "rate") {
    for (int i = 0; i < options.connections; ++i) threads.emplace_back(RateLoop, options, i, start, &results);
  } else {
    auto end =
        start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.seconds));
    for (int i = 0; i < options.streams; ++i) threads.emplace_back(StreamLoop, options, end, &results);
  }
  for (std::thread& thread : threads) thread.join();
  double elapsed = Millis(Clock::now() - start) / 1000;
  double cpu_after = ProcessCpuSeconds(options.gateway_pid);
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
    char line[256];
    std::snprintf(line, sizeof(line),
                  ",\"messages\":%zu,\"message_stamp_errors\":%d,\"message_added_ms\":{\"p50\":%.3f,"
                  "\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}",
                  added.size(), results.stamp_errors.load(), Percentile(added, 0.5), Percentile(added, 0.9),
                  Percentile(added, 0.99), Percentile(added, 0.999), Percentile(added, 1.0));
    messages = line;
  }
  std::printf(
      "{\"mode\":\"%s\",\"requests\":%zu,\"errors\":%d,\"achieved_rps\":%.1f,\"added_ms\":{\"p50\":%.3f,"
      "\"p90\":%.3f,"
      "\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},\"end_to_end_ms\":{\"p50\":%.3f,\"p99\":%.3f},"
      "\"gateway_cpu_cores\":%s,\"gateway_context_switches_per_request\":%s%s}\n",
      options.mode.c_str(), count, results.errors.load(), count / elapsed, Percentile(results.added_ms, 0.5),
      Percentile(results.added_ms, 0.9), Percentile(results.added_ms, 0.99),
      Percentile(results.added_ms, 0.999), Percentile(results.added_ms, 1.0),
      Percentile(results.total_ms, 0.5), Percentile(results.total_ms, 0.99), gateway_cores,
      switches_per_request, messages.c_str());
  return results.errors.load() == 0 && results.stamp_errors.load() == 0 ? 0 : 1;
}

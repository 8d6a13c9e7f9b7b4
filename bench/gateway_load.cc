// doze_gateway_load: measures the latency doze-gateway adds (end to end minus the worker's own reported
// total_ms) under an open-loop request rate of short completions, or under many concurrent streams.
//
//   doze_gateway_load --port P --mode rate --rate 1000 --seconds 10 --connections 64 [--function F]
//   doze_gateway_load --port P --mode streams --streams 200 --seconds 10 --max-tokens 32
//   [--gateway-pid PID]: also report the CPU the gateway used during the measured window, in cores, and its
//   threads' context switches per request (each thread hand-off on a request's path costs at least one).
//
// Rate mode paces each keep-alive connection on a fixed schedule and measures from the scheduled send time,
// so a slow gateway cannot hide its delay by slowing the load down. Prints one JSON line of percentiles (ms).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
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

// Reads one response on a keep-alive connection: to the end of its Content-Length body, or of its chunked
// stream. Returns the worker's total_ms, or a negative number on failure.
double ReadResponse(int fd, std::string* buffer) {
  buffer->clear();
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
    buffer->append(chunk, static_cast<size_t>(n));
  }
}

struct Results {
  std::mutex mu;
  std::vector<double> added_ms;
  std::vector<double> total_ms;
  std::atomic<int> errors{0};

  void Add(double total, double worker) {
    std::lock_guard<std::mutex> lock(mu);
    total_ms.push_back(total);
    added_ms.push_back(std::max(0.0, total - worker));
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
  while (Clock::now() < end) {
    auto sent = Clock::now();
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) break;
    double worker = ReadResponse(fd, &buffer);
    if (worker < 0) {
      results->errors++;
      break;
    }
    results->Add(Millis(Clock::now() - sent), worker);
  }
  close(fd);
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
  std::printf(
      "{\"mode\":\"%s\",\"requests\":%zu,\"errors\":%d,\"achieved_rps\":%.1f,\"added_ms\":{\"p50\":%.3f,"
      "\"p90\":%.3f,"
      "\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},\"end_to_end_ms\":{\"p50\":%.3f,\"p99\":%.3f},"
      "\"gateway_cpu_cores\":%s,\"gateway_context_switches_per_request\":%s}\n",
      options.mode.c_str(), count, results.errors.load(), count / elapsed, Percentile(results.added_ms, 0.5),
      Percentile(results.added_ms, 0.9), Percentile(results.added_ms, 0.99),
      Percentile(results.added_ms, 0.999), Percentile(results.added_ms, 1.0),
      Percentile(results.total_ms, 0.5), Percentile(results.total_ms, 0.99), gateway_cores,
      switches_per_request);
  return results.errors.load() == 0 ? 0 : 1;
}

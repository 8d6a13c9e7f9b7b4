// doze_loopback_send_bench: the floor under the gateway's delivery of an engine step's burst. A step hands
// every running stream its token at once, and the gateway writes one SSE event to each stream's connection:
// on a host whose clients are local, each of those sends also runs the loopback receive path and, when the
// reader sleeps, its wake-up on the sending core. This program does only that: one sender thread writes a
// --bytes message to each of --sockets loopback TCP connections in turn (one burst), --bursts times,
// --interval-ms apart, while the readers drain them in one of three ways:
//   blocking  a thread per connection blocked in recv() (the load generator's default streams);
//   epoll     --reader-threads threads, each sleeping in epoll_wait() over its share (most clients);
//   poll      the same threads calling epoll_wait() with a zero timeout, never asleep (a client that polls;
//             the sender then wakes nobody).
// It reports, per reader kind, the burst's duration (first send to the last send's return: when the last
// stream's event has left) and the sender's time per send, as JSON lines and a table.
//
//   doze_loopback_send_bench [--sockets 200] [--bytes 180] [--bursts 200] [--interval-ms 20]
//     [--readers blocking,epoll,poll] [--reader-threads 4] [--sender-cpus LIST] [--reader-cpus LIST]
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "worker/common/cpu_list.h"
#include "worker/common/percentile.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int sockets = 200;
  int bytes = 180;  // about one SSE chunk of a one-token delta
  int bursts = 200;
  double interval_ms = 20;
  std::vector<std::string> readers = {"blocking", "epoll", "poll"};
  int reader_threads = 4;
  std::optional<cpu_set_t> sender_cpus, reader_cpus;
};

void Fail(const std::string& what) {
  std::fprintf(stderr, "doze_loopback_send_bench: %s\n", what.c_str());
  std::exit(2);
}

std::optional<cpu_set_t> CpusOrDie(const std::string& list) {
  absl::StatusOr<cpu_set_t> set = doze::ParseCpuList(list);
  if (!set.ok()) Fail(std::string(set.status().message()));
  return *set;
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) Fail(flag + " needs a value");
    const std::string value = argv[i + 1];
    if (flag == "--sockets") {
      o.sockets = std::atoi(value.c_str());
    } else if (flag == "--bytes") {
      o.bytes = std::atoi(value.c_str());
    } else if (flag == "--bursts") {
      o.bursts = std::atoi(value.c_str());
    } else if (flag == "--interval-ms") {
      o.interval_ms = std::atof(value.c_str());
    } else if (flag == "--readers") {
      o.readers = absl::StrSplit(value, ',');
    } else if (flag == "--reader-threads") {
      o.reader_threads = std::atoi(value.c_str());
    } else if (flag == "--sender-cpus") {
      o.sender_cpus = CpusOrDie(value);
    } else if (flag == "--reader-cpus") {
      o.reader_cpus = CpusOrDie(value);
    } else {
      Fail("unknown flag " + flag);
    }
  }
  if (o.sockets < 1 || o.bytes < 1 || o.bursts < 1 || o.reader_threads < 1) Fail("counts must be positive");
  for (const std::string& kind : o.readers) {
    if (kind != "blocking" && kind != "epoll" && kind != "poll") Fail("unknown reader kind " + kind);
  }
  return o;
}

void Pin(const std::optional<cpu_set_t>& cpus) {
  if (!cpus) return;
  if (absl::Status pinned = doze::PinThisThread(*cpus); !pinned.ok()) Fail(std::string(pinned.message()));
}

// `count` connected loopback TCP pairs: senders[i] writes what readers[i] reads. Both ends without Nagle,
// as the gateway's and its clients' sockets are.
void ConnectPairs(int count, std::vector<int>* senders, std::vector<int>* readers) {
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(listener, count) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0)
    Fail(std::string("listen: ") + std::strerror(errno));
  const int one = 1;
  for (int i = 0; i < count; ++i) {
    const int reader = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(reader, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0)
      Fail(std::string("connect: ") + std::strerror(errno));
    const int sender = accept(listener, nullptr, nullptr);
    if (sender < 0) Fail(std::string("accept: ") + std::strerror(errno));
    setsockopt(sender, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(reader, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    senders->push_back(sender);
    readers->push_back(reader);
  }
  close(listener);
}

// Drains the connections of `fds` until each reaches end of file: a thread per connection in recv(), or
// reader_threads threads on epoll sets that sleep (kind "epoll") or poll with a zero timeout ("poll").
std::vector<std::thread> StartReaders(const Options& o, const std::string& kind,
                                      const std::vector<int>& fds) {
  std::vector<std::thread> threads;
  if (kind == "blocking") {
    for (int fd : fds) {
      threads.emplace_back([&o, fd] {
        Pin(o.reader_cpus);
        char buffer[4096];
        while (recv(fd, buffer, sizeof(buffer), 0) > 0) {
        }
      });
    }
    return threads;
  }
  const int timeout = kind == "poll" ? 0 : -1;
  for (int t = 0; t < o.reader_threads; ++t) {
    std::vector<int> mine;
    for (size_t i = t; i < fds.size(); i += o.reader_threads) mine.push_back(fds[i]);
    threads.emplace_back([&o, timeout, mine] {
      Pin(o.reader_cpus);
      const int epoll = epoll_create1(0);
      for (int fd : mine) {
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.fd = fd;
        epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
      }
      size_t open = mine.size();
      char buffer[4096];
      epoll_event events[64];
      while (open > 0) {
        const int ready = epoll_wait(epoll, events, 64, timeout);
        for (int e = 0; e < ready; ++e) {
          const ssize_t n = recv(events[e].data.fd, buffer, sizeof(buffer), MSG_DONTWAIT);
          if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            epoll_ctl(epoll, EPOLL_CTL_DEL, events[e].data.fd, nullptr);
            --open;
          }
        }
      }
      close(epoll);
    });
  }
  return threads;
}

struct Result {
  std::string kind;
  double burst_p50_ms, burst_p99_ms, send_p50_us, send_p99_us;
};

// One reader kind: connects, bursts, closes; returns the percentiles.
Result Measure(const Options& o, const std::string& kind) {
  std::vector<int> senders, readers;
  ConnectPairs(o.sockets, &senders, &readers);
  std::vector<std::thread> threads = StartReaders(o, kind, readers);
  std::vector<double> bursts_ms, sends_us;
  std::thread sender([&] {
    Pin(o.sender_cpus);
    const std::string message(o.bytes, 'x');
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the readers settle (asleep or polling)
    auto next = Clock::now();
    for (int b = 0; b < o.bursts; ++b) {
      next += std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double, std::milli>(o.interval_ms));
      const auto start = Clock::now();
      auto last = start;
      for (int fd : senders) {
        if (send(fd, message.data(), message.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(message.size()))
          Fail(std::string("send: ") + std::strerror(errno));
        const auto now = Clock::now();
        sends_us.push_back(std::chrono::duration<double, std::micro>(now - last).count());
        last = now;
      }
      bursts_ms.push_back(std::chrono::duration<double, std::milli>(last - start).count());
      std::this_thread::sleep_until(next);
    }
  });
  sender.join();
  for (int fd : senders) shutdown(fd, SHUT_WR);
  for (std::thread& thread : threads) thread.join();
  for (int fd : senders) close(fd);
  for (int fd : readers) close(fd);
  return {kind, doze::Percentile(bursts_ms, 50), doze::Percentile(bursts_ms, 99),
          doze::Percentile(sends_us, 50), doze::Percentile(sends_us, 99)};
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = ParseOptions(argc, argv);
  std::vector<Result> results;
  for (const std::string& kind : o.readers) {
    results.push_back(Measure(o, kind));
    const Result& r = results.back();
    std::printf(
        "{\"readers\":\"%s\",\"reader_threads\":%d,\"sockets\":%d,\"bytes\":%d,\"bursts\":%d,"
        "\"burst_ms\":{\"p50\":%.3f,\"p99\":%.3f},\"send_us\":{\"p50\":%.2f,\"p99\":%.2f}}\n",
        r.kind.c_str(), r.kind == "blocking" ? o.sockets : o.reader_threads, o.sockets, o.bytes, o.bursts,
        r.burst_p50_ms, r.burst_p99_ms, r.send_p50_us, r.send_p99_us);
  }
  std::printf("\n| readers | burst of %d sends p50 / p99 (ms) | one send p50 / p99 (us) |\n|---|---|---|\n",
              o.sockets);
  for (const Result& r : results) {
    std::printf("| %s | %.3f / %.3f | %.2f / %.2f |\n", r.kind.c_str(), r.burst_p50_ms, r.burst_p99_ms,
                r.send_p50_us, r.send_p99_us);
  }
  return 0;
}

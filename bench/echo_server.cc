// doze_echo_server: the floor under the gateway's rate test. A minimal HTTP/1.1 server that answers every
// request at once with one small canned chat completion ("worker_total_ms": 0), on --threads threads (2, as
// the gateway's io_threads) each sleeping in epoll_wait() over its connections, as the gateway's loops do.
// Pinned (taskset) to the gateway's CPUs and driven by `doze_gateway_load --mode rate`, it measures what the
// host's loopback TCP, scheduler and timer noise alone add at 1,000 requests/s: the latency no gateway on
// those CPUs can go under (bench/gateway_bench.sh's "floor" test).
//
//   doze_echo_server [--port 0] [--threads 2] [--work-us 0]    prints {"port": P} once it listens; runs until
//   killed. --work-us W spins W microseconds of CPU before each answer, as a server that does work per
//   request (the floor of a busier server: with more threads than CPUs, how long a woken thread waits for
//   one).
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

constexpr char kBody[] =
    "{\"id\":\"chatcmpl-floor\",\"object\":\"chat.completion\",\"created\":0,\"model\":\"copy_polish\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"t0 \"},\"finish_reason\":"
    "\"length\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6},"
    "\"doze\":{\"worker_total_ms\":0}}";

const std::string& Response() {
  static const std::string response =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
      std::to_string(sizeof(kBody) - 1) + "\r\n\r\n" + kBody;
  return response;
}

// Bytes of the first whole request in `buffer` (its header and Content-Length body), or 0 if incomplete.
size_t RequestLength(const std::string& buffer) {
  const size_t header_end = buffer.find("\r\n\r\n");
  if (header_end == std::string::npos) return 0;
  size_t body = 0;
  const size_t length_at = buffer.find("Content-Length: ");
  if (length_at != std::string::npos && length_at < header_end)
    body = std::strtoul(buffer.c_str() + length_at + 16, nullptr, 10);
  const size_t total = header_end + 4 + body;
  return buffer.size() >= total ? total : 0;
}

// Spins `us` microseconds of this thread's CPU time.
void Work(int us) {
  if (us <= 0) return;
  timespec start, now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start);
  do {
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  } while ((now.tv_sec - start.tv_sec) * 1000000 + (now.tv_nsec - start.tv_nsec) / 1000 < us);
}

// One loop: reads its connections' requests and answers each whole one.
void Serve(int epoll, int work_us) {
  std::unordered_map<int, std::string> buffers;
  char chunk[65536];
  epoll_event events[64];
  while (true) {
    const int ready = epoll_wait(epoll, events, 64, -1);
    for (int e = 0; e < ready; ++e) {
      const int fd = events[e].data.fd;
      std::string& buffer = buffers[fd];
      bool closed = false;
      while (true) {
        const ssize_t n = recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
        if (n > 0) {
          buffer.append(chunk, static_cast<size_t>(n));
          continue;
        }
        closed = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
        break;
      }
      for (size_t length; !closed && (length = RequestLength(buffer)) > 0;) {
        buffer.erase(0, length);
        Work(work_us);
        closed = send(fd, Response().data(), Response().size(), MSG_NOSIGNAL) !=
                 static_cast<ssize_t>(Response().size());
      }
      if (closed) {
        epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nullptr);
        close(fd);
        buffers.erase(fd);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0, threads = 2, work_us = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--port") {
      port = std::atoi(argv[i + 1]);
    } else if (flag == "--threads") {
      threads = std::max(1, std::atoi(argv[i + 1]));
    } else if (flag == "--work-us") {
      work_us = std::atoi(argv[i + 1]);
    } else {
      std::fprintf(stderr, "doze_echo_server: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(listener, 4096) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    std::fprintf(stderr, "doze_echo_server: listen: %s\n", std::strerror(errno));
    return 1;
  }
  std::printf("{\"port\": %d}\n", ntohs(address.sin_port));
  std::fflush(stdout);
  std::vector<int> loops;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    loops.push_back(epoll_create1(0));
    workers.emplace_back(Serve, loops.back(), work_us);
  }
  for (int next = 0;; next = (next + 1) % threads) {
    const int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) continue;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    epoll_ctl(loops[next], EPOLL_CTL_ADD, fd, &event);
  }
}

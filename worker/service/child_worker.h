// A doze-worker started as a child process: spawn, read its ready line, signal it, wait for its exit. Used by
// `doze bench-cold` and the tests (the gateway has its own spawner).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace doze::service {

class ChildWorker {
 public:
  // Starts `argv` (argv[0] a path) with stdout on a pipe and stderr appended to `stderr_path` ("" keeps
  // this process's stderr).
  static absl::StatusOr<ChildWorker> Spawn(const std::vector<std::string>& argv,
                                           const std::string& stderr_path = "");

  ChildWorker(ChildWorker&& other) noexcept;
  ChildWorker& operator=(ChildWorker&& other) noexcept;
  ChildWorker(const ChildWorker&) = delete;
  ChildWorker& operator=(const ChildWorker&) = delete;
  // Kills (SIGKILL) and reaps a child still running.
  ~ChildWorker();

  pid_t pid() const { return pid_; }
  // The next line the child prints on stdout, without its newline. DeadlineExceeded after `timeout`,
  // Unavailable when the child closed its stdout (exited) first.
  absl::StatusOr<std::string> ReadLine(std::chrono::milliseconds timeout);
  // Sends `signal_number` to the child.
  void Signal(int signal_number);
  // Waits for the child to exit and returns its exit status (128 + N when killed by signal N);
  // DeadlineExceeded after `timeout` (the child keeps running).
  absl::StatusOr<int> Wait(std::chrono::milliseconds timeout);

 private:
  ChildWorker(pid_t pid, int stdout_fd, int pid_fd) : pid_(pid), stdout_fd_(stdout_fd), pid_fd_(pid_fd) {}
  void Reset();

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int pid_fd_ = -1;  // pollable until the child exits
  std::string buffered_;
};

}  // namespace doze::service

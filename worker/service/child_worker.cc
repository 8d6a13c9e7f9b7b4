#include "worker/service/child_worker.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace doze::service {
namespace {

using Clock = std::chrono::steady_clock;

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

}  // namespace

absl::StatusOr<ChildWorker> ChildWorker::Spawn(const std::vector<std::string>& argv,
                                               const std::string& stderr_path) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0)
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  if (!stderr_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
  }
  // The child starts with SIGTERM deliverable whatever this process blocks.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int error = posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(pipe_fds[1]);
  if (error != 0) {
    close(pipe_fds[0]);
    return absl::InternalError(absl::StrCat(argv[0], ": ", std::strerror(error)));
  }
  const int pid_fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  return ChildWorker(pid, pipe_fds[0], pid_fd);
}

ChildWorker::ChildWorker(ChildWorker&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      stdout_fd_(std::exchange(other.stdout_fd_, -1)),
      pid_fd_(std::exchange(other.pid_fd_, -1)),
      buffered_(std::move(other.buffered_)) {}

ChildWorker& ChildWorker::operator=(ChildWorker&& other) noexcept {
  if (this != &other) {
    Reset();
    pid_ = std::exchange(other.pid_, -1);
    stdout_fd_ = std::exchange(other.stdout_fd_, -1);
    pid_fd_ = std::exchange(other.pid_fd_, -1);
    buffered_ = std::move(other.buffered_);
  }
  return *this;
}

ChildWorker::~ChildWorker() { Reset(); }

void ChildWorker::Reset() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
  if (pid_fd_ >= 0) close(pid_fd_);
  pid_ = -1;
  stdout_fd_ = -1;
  pid_fd_ = -1;
}

absl::StatusOr<std::string> ChildWorker::ReadLine(std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    const size_t newline = buffered_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffered_.substr(0, newline);
      buffered_.erase(0, newline + 1);
      return line;
    }
    pollfd ready{stdout_fd_, POLLIN, 0};
    const int polled = poll(&ready, 1, RemainingMs(deadline));
    if (polled == 0) return absl::DeadlineExceededError("no line from the worker in time");
    if (polled < 0 && errno == EINTR) continue;
    char chunk[4096];
    const ssize_t got = read(stdout_fd_, chunk, sizeof(chunk));
    if (got <= 0) return absl::UnavailableError("the worker closed its stdout");
    buffered_.append(chunk, static_cast<size_t>(got));
  }
}

void ChildWorker::Signal(int signal_number) {
  if (pid_ > 0) kill(pid_, signal_number);
}

absl::StatusOr<int> ChildWorker::Wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("no child to wait for");
  // The pid fd becomes readable when the child exits; without one (old kernels) waitpid blocks.
  if (pid_fd_ >= 0) {
    pollfd exited{pid_fd_, POLLIN, 0};
    if (poll(&exited, 1, static_cast<int>(timeout.count())) == 0) {
      return absl::DeadlineExceededError("the worker did not exit in time");
    }
  }
  int status = 0;
  if (waitpid(pid_, &status, 0) != pid_) return absl::InternalError(std::strerror(errno));
  pid_ = -1;
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

}  // namespace doze::service

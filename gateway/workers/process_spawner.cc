#include "gateway/workers/process_spawner.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio/posix/stream_descriptor.hpp"
#include "boost/asio/read_until.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/streambuf.hpp"
#include "worker/common/logging.h"

extern char** environ;

namespace doze::gateway {
namespace {

namespace net = boost::asio;

// Describes a waitpid status.
std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return absl::StrCat("killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)), ")");
  return absl::StrCat("ended with wait status ", status);
}

// Reports the exit once both the pidfd has signalled it and the output pipe has reached its end (the child's
// last line, often the reason it failed, may still be in the pipe when the exit is noticed); if something
// else keeps the pipe open, the exit is reported anyway after kOutputGrace.
class Child : public ChildProcess, public std::enable_shared_from_this<Child> {
 public:
  Child(net::any_io_executor executor, pid_t pid, int pidfd, int output_fd, std::string log_prefix)
      : pid_(pid),
        exit_(executor, pidfd),
        output_(executor, output_fd),
        grace_(executor),
        log_prefix_(std::move(log_prefix)) {}

  pid_t pid() const override { return pid_; }

  void Signal(int signal) override {
    absl::MutexLock lock(&mu_);
    if (!exited_) kill(-pid_, signal);
  }

  void Watch(std::function<void(std::string)> on_exit) {
    on_exit_ = std::move(on_exit);
    ReadOutput();
    exit_.async_wait(net::posix::stream_descriptor::wait_read,
                     [self = shared_from_this()](boost::system::error_code) { self->OnExit(); });
  }

 private:
  static constexpr std::chrono::milliseconds kOutputGrace{500};

  void ReadOutput() {
    net::async_read_until(output_, output_buffer_, '\n',
                          [self = shared_from_this()](boost::system::error_code error, size_t bytes) {
                            if (error) {
                              self->OnOutputEnd();
                              return;
                            }
                            self->TakeLine(bytes);
                            self->ReadOutput();
                          });
  }

  void TakeLine(size_t bytes) {
    std::string line(net::buffers_begin(output_buffer_.data()),
                     net::buffers_begin(output_buffer_.data()) + bytes);
    output_buffer_.consume(bytes);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (line.empty()) return;
    DOZE_LOG(INFO) << log_prefix_ << line;
    absl::MutexLock lock(&mu_);
    last_line_ = line;
  }

  // The pipe is closed: a last line without its newline still counts.
  void OnOutputEnd() {
    if (output_buffer_.size() > 0) TakeLine(output_buffer_.size());
    {
      absl::MutexLock lock(&mu_);
      output_ended_ = true;
    }
    MaybeReport(/*force=*/false);
  }

  // Collects the exit status, then waits (up to kOutputGrace) for the output's end.
  void OnExit() {
    {
      // Reaped under the lock that Signal takes: once the pid is free for reuse, no signal goes to it.
      absl::MutexLock lock(&mu_);
      int status = 0;
      waitpid(pid_, &status, 0);
      exited_ = true;
      status_ = status;
    }
    MaybeReport(/*force=*/false);
    grace_.expires_after(kOutputGrace);
    grace_.async_wait([self = shared_from_this()](boost::system::error_code) { self->MaybeReport(true); });
  }

  // Whether the child's last line may say why it ended: it failed on its own (a non-zero exit, an abort, a
  // crash), rather than being killed from outside (SIGKILL, SIGTERM: the OOM killer, an operator), when its
  // last line is whatever it logged before (its ready event).
  static bool SaysWhy(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status) != 0;
    return WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL && WTERMSIG(status) != SIGTERM &&
           WTERMSIG(status) != SIGINT && WTERMSIG(status) != SIGHUP;
  }

  // Runs on_exit once, with the exit status and, for a failure of its own, the last line the child printed.
  void MaybeReport(bool force) {
    std::string reason;
    {
      absl::MutexLock lock(&mu_);
      if (reported_ || !exited_ || (!output_ended_ && !force)) return;
      reported_ = true;
      reason = DescribeExit(status_);
      if (!last_line_.empty() && SaysWhy(status_)) absl::StrAppend(&reason, ": ", last_line_);
    }
    on_exit_(std::move(reason));  // the grace timer, if armed, finds reported_ set
  }

  const pid_t pid_;
  net::posix::stream_descriptor exit_;
  net::posix::stream_descriptor output_;
  net::steady_timer grace_;
  net::streambuf output_buffer_;
  const std::string log_prefix_;
  std::function<void(std::string)> on_exit_;
  absl::Mutex mu_;
  bool exited_ ABSL_GUARDED_BY(mu_) = false;
  bool output_ended_ ABSL_GUARDED_BY(mu_) = false;
  bool reported_ ABSL_GUARDED_BY(mu_) = false;
  int status_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_line_ ABSL_GUARDED_BY(mu_);
};

// The environment of the child: the gateway's own plus `extra`.
std::vector<std::string> ChildEnvironment(const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) env.emplace_back(*entry);
  for (const auto& [name, value] : extra) env.push_back(absl::StrCat(name, "=", value));
  return env;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (std::string& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

// Marks every descriptor from 3 on close-on-exec, so that nothing of the gateway's (its listening socket, its
// connections, its pipes) reaches the worker.
void CloseOnExecFrom3() {
  if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) == 0) return;
  for (int fd = 3; fd < 65536; ++fd) fcntl(fd, F_SETFD, FD_CLOEXEC);  // kernels before 5.11
}

// The child between fork and execve; the gateway has threads, so only async-signal-safe calls. Its errno
// goes to `error_fd` (close-on-exec) if execve fails.
[[noreturn]] void RunChild(pid_t gateway, int output_fd, int error_fd, const char* binary, char* const* argv,
                           char* const* envp) {
  setpgid(0, 0);
  // The worker gets SIGTERM (on which it drains and exits) when the gateway ends, killed outright included
  // (strictly: when the gateway thread that started it ends, and those run until the gateway exits); a
  // gateway gone before this line leaves the child to init, which it then leaves at once.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != gateway) _exit(127);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaction(sig, &default_action, nullptr);
  sigset_t no_signals;
  sigemptyset(&no_signals);
  sigprocmask(SIG_SETMASK, &no_signals, nullptr);
  dup2(output_fd, STDOUT_FILENO);
  dup2(output_fd, STDERR_FILENO);
  CloseOnExecFrom3();
  execve(binary, argv, envp);
  const int error = errno;
  ssize_t written = write(error_fd, &error, sizeof error);
  (void)written;
  _exit(127);
}

// Reads the child's execve errno from `error_fd`: 0 once execve has closed the pipe.
int ChildExecError(int error_fd) {
  int error = 0;
  ssize_t n = 0;
  do {
    n = read(error_fd, &error, sizeof error);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof error) ? error : 0;
}

}  // namespace

absl::StatusOr<std::shared_ptr<ChildProcess>> ProcessSpawner::Spawn(
    const SpawnSpec& spec, std::function<void(std::string)> on_exit) {
  int pipe_fds[2], error_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  if (pipe2(error_fds, O_CLOEXEC) != 0) {
    const int error = errno;
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return absl::InternalError(absl::StrCat("pipe: ", strerror(error)));
  }
  std::vector<std::string> argv{spec.binary};
  argv.insert(argv.end(), spec.args.begin(), spec.args.end());
  std::vector<std::string> env = ChildEnvironment(spec.extra_env);
  std::vector<char*> argv_pointers = Pointers(argv);
  std::vector<char*> env_pointers = Pointers(env);
  const pid_t gateway = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    RunChild(gateway, pipe_fds[1], error_fds[1], spec.binary.c_str(), argv_pointers.data(),
             env_pointers.data());
  }
  const int fork_error = errno;
  close(pipe_fds[1]);
  close(error_fds[1]);
  const int exec_error = pid < 0 ? fork_error : ChildExecError(error_fds[0]);
  close(error_fds[0]);
  if (pid < 0 || exec_error != 0) {
    if (pid > 0) waitpid(pid, nullptr, 0);
    close(pipe_fds[0]);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start ", spec.binary, ": ", strerror(exec_error)));
  }
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    kill(-pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    close(pipe_fds[0]);
    return absl::InternalError(absl::StrCat("pidfd_open: ", strerror(errno)));
  }
  auto child = std::make_shared<Child>(executor_, pid, pidfd, pipe_fds[0], spec.log_prefix);
  child->Watch(std::move(on_exit));
  return child;
}

}  // namespace doze::gateway

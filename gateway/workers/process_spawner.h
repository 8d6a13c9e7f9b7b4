// Starts worker processes: each in its own process group (so a stop reaches its children too), its output
// forwarded to the gateway's stderr with the function's name, its exit noticed at once through a pidfd.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "boost/asio/any_io_executor.hpp"

namespace doze::gateway {

// What to run.
struct SpawnSpec {
  std::string binary;
  std::vector<std::string> args;                               // Without argv[0].
  std::vector<std::pair<std::string, std::string>> extra_env;  // Added to the gateway's environment.
  std::string log_prefix;                                      // Put before each forwarded output line.
};

// A running child; thread-safe.
class ChildProcess {
 public:
  virtual ~ChildProcess() = default;

  // Returns the process id (also its process group id).
  virtual pid_t pid() const = 0;

  // Sends `signal` to the child's whole process group (no-op once it has exited).
  virtual void Signal(int signal) = 0;
};

// Starts children; a seam for tests.
class Spawner {
 public:
  virtual ~Spawner() = default;

  // Starts `spec`; `on_exit` runs once, on the executor, with a description of how it ended ("exited with
  // status 1: <last output line>", "killed by signal 9").
  virtual absl::StatusOr<std::shared_ptr<ChildProcess>> Spawn(
      const SpawnSpec& spec, std::function<void(std::string reason)> on_exit) = 0;
};

// The real spawner: fork and execve, pidfd exit notification, output through a pipe. The child inherits no
// descriptor of the gateway's but its output pipe, and gets SIGTERM when the gateway ends (PR_SET_PDEATHSIG),
// so that a gateway killed outright leaves neither workers nor its port behind.
class ProcessSpawner : public Spawner {
 public:
  explicit ProcessSpawner(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}

  absl::StatusOr<std::shared_ptr<ChildProcess>> Spawn(
      const SpawnSpec& spec, std::function<void(std::string reason)> on_exit) override;

 private:
  boost::asio::any_io_executor executor_;
};

}  // namespace doze::gateway

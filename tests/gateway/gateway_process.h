// Runs doze-gateway (or another server that announces its port the same way) as a child process on port 0
// for end-to-end tests: waits for its ready line, and stops it (SIGTERM, then SIGKILL) at the end.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace doze::gateway::testing {

// A fresh folder under the build tree's test data (removed and recreated).
std::string FreshTestDir(const std::string& name);

// The vocab_size WriteTokenizerOnlyModel writes: Qwen2.5's (the tokenizer's ids and the padding past them).
constexpr int kTokenizerOnlyVocab = 151936;

// Writes config.json (max_position_embeddings = `context_length`, vocab_size = kTokenizerOnlyVocab) and the
// tokenizer into `dir`: enough of a model folder for the gateway, which only counts tokens.
void WriteTokenizerOnlyModel(const std::string& dir, int context_length);

// A server process whose first line on stdout is a JSON object with its "port"; its stderr goes to
// `log_path`.
class ServerProcess {
 public:
  // Starts `argv` (argv[0] a path) with `env` added; waits up to 30 s for its ready line.
  ServerProcess(const std::vector<std::string>& argv, const std::string& log_path,
                const std::map<std::string, std::string>& env = {});
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Returns the bound port (0 when the server did not come up).
  uint16_t port() const { return port_; }

  // Returns the server's pid.
  pid_t pid() const { return pid_; }

  // Sends `signal` to the server.
  void Signal(int signal) const;

  // Waits up to `timeout_ms` for the server to exit; returns its wait status, or -1 on timeout.
  int WaitExit(int timeout_ms);

  // Returns the path of the server's log (its stderr).
  const std::string& log_path() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string log_path_;
  bool exited_ = false;
};

class GatewayProcess : public ServerProcess {
 public:
  // Writes `config_yaml` to `dir`/doze.yaml and starts build/bin/doze-gateway on it with `env` added, its
  // log in `dir`/gateway.log.
  GatewayProcess(const std::string& dir, const std::string& config_yaml,
                 const std::map<std::string, std::string>& env = {});
};

}  // namespace doze::gateway::testing

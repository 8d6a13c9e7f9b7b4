// Runs doze-gateway as a child process on port 0 for end-to-end tests: writes its configuration, waits for
// its ready line, and stops it (SIGTERM, then SIGKILL) at the end.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>

namespace doze::gateway::testing {

// A fresh folder under the build tree's test data (removed and recreated).
std::string FreshTestDir(const std::string& name);

// Writes config.json (max_position_embeddings = `context_length`) and the tokenizer into `dir`: enough of a
// model folder for the gateway, which only counts tokens.
void WriteTokenizerOnlyModel(const std::string& dir, int context_length);

class GatewayProcess {
 public:
  // Writes `config_yaml` to `dir`/doze.yaml and starts build/bin/doze-gateway on it with `env` added; waits
  // up to 30 s for its ready line.
  GatewayProcess(const std::string& dir, const std::string& config_yaml,
                 const std::map<std::string, std::string>& env = {});
  ~GatewayProcess();

  // Returns the bound port (0 when the gateway did not come up).
  uint16_t port() const { return port_; }

  // Returns the gateway's pid.
  pid_t pid() const { return pid_; }

  // Sends `signal` to the gateway.
  void Signal(int signal) const;

  // Waits up to `timeout_ms` for the gateway to exit; returns its wait status, or -1 on timeout.
  int WaitExit(int timeout_ms);

  // Returns the path of the gateway's log (its stderr).
  const std::string& log_path() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string log_path_;
  bool exited_ = false;
};

}  // namespace doze::gateway::testing

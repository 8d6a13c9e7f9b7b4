#include "tests/gateway/gateway_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"

extern char** environ;

namespace doze::gateway::testing {
namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

// Reads one line from `fd` within `timeout_ms`.
std::string ReadLine(int fd, int timeout_ms) {
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char c;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    if (read(fd, &c, 1) != 1) break;
    if (c == '\n') return line;
    line += c;
  }
  return line;
}

}  // namespace

std::string FreshTestDir(const std::string& name) {
  std::filesystem::path dir = std::filesystem::path(Env("DOZE_BUILD_DIR")) / "test-data" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

void WriteTokenizerOnlyModel(const std::string& dir, int context_length) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config.json") << nlohmann::json{
      {"max_position_embeddings", context_length},
      {"vocab_size", kTokenizerOnlyVocab}}.dump();
  std::filesystem::copy_file(Env("DOZE_TOKENIZER_DIR") + "/tokenizer.json", dir + "/tokenizer.json",
                             std::filesystem::copy_options::overwrite_existing);
}

namespace {

// Writes the gateway's configuration into `dir`; returns the command line that runs the gateway on it.
std::vector<std::string> GatewayCommand(const std::string& dir, const std::string& config_yaml) {
  const std::string config_path = dir + "/doze.yaml";
  std::ofstream(config_path) << config_yaml;
  return {Env("DOZE_BUILD_DIR") + "/bin/doze-gateway", "--config", config_path};
}

}  // namespace

GatewayProcess::GatewayProcess(const std::string& dir, const std::string& config_yaml,
                               const std::map<std::string, std::string>& env)
    : ServerProcess(GatewayCommand(dir, config_yaml), dir + "/gateway.log", env) {}

ServerProcess::ServerProcess(const std::vector<std::string>& argv_in, const std::string& log_path,
                             const std::map<std::string, std::string>& env)
    : log_path_(log_path) {
  const std::string& binary = argv_in.at(0);
  int out[2];
  if (pipe(out) != 0) return;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  std::vector<std::string> argv_strings = argv_in;
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  for (const auto& [name, value] : env) env_strings.push_back(name + "=" + value);
  std::vector<char*> argv, envp;
  for (std::string& s : argv_strings) argv.push_back(s.data());
  for (std::string& s : env_strings) envp.push_back(s.data());
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  int error = posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (error != 0) {
    pid_ = -1;
    close(out[0]);
    return;
  }
  std::string ready = ReadLine(out[0], 30000);
  close(out[0]);
  nlohmann::json parsed = nlohmann::json::parse(ready, nullptr, false);
  if (parsed.is_object() && parsed.contains("port")) port_ = parsed["port"].get<uint16_t>();
}

ServerProcess::~ServerProcess() {
  if (pid_ <= 0 || exited_) return;
  Signal(SIGTERM);
  if (WaitExit(20000) == -1) {
    Signal(SIGKILL);
    WaitExit(5000);
  }
}

void ServerProcess::Signal(int signal) const {
  if (pid_ > 0 && !exited_) kill(pid_, signal);
}

int ServerProcess::WaitExit(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

}  // namespace doze::gateway::testing

// doze-gateway --config FILE [--check-config]: serves the OpenAI-compatible API in front of the workers.
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "absl/synchronization/mutex.h"
#include "boost/program_options.hpp"
#include "gateway/config/config_loader.h"
#include "gateway/config/config_paths.h"
#include "gateway/gateway.h"
#include "nlohmann/json.hpp"
#include "worker/common/logging.h"

namespace {

namespace po = boost::program_options;

struct Flags {
  std::string config;
  bool check_config = false;
};

// Returns the flags, or nullopt after printing help or an error.
std::optional<Flags> ParseFlags(int argc, char** argv, int* exit_code) {
  Flags flags;
  po::options_description options("doze-gateway --config FILE [--check-config]");
  options.add_options()("help", "show this help")("config", po::value(&flags.config)->required(),
                                                  "the YAML configuration (config/doze.yaml)")(
      "check-config", po::bool_switch(&flags.check_config), "validate the configuration and exit");
  try {
    po::variables_map values;
    po::store(po::parse_command_line(argc, argv, options), values);
    if (values.count("help")) {
      std::cout << options << "\n";
      *exit_code = 0;
      return std::nullopt;
    }
    po::notify(values);
  } catch (const po::error& e) {
    std::cerr << "doze-gateway: " << e.what() << "\n" << options << "\n";
    *exit_code = 2;
    return std::nullopt;
  }
  return flags;
}

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  std::optional<Flags> flags = ParseFlags(argc, argv, &exit_code);
  if (!flags.has_value()) return exit_code;
  signal(SIGPIPE, SIG_IGN);
  // Debian's Abseil checks every Mutex acquisition (ours and gRPC's) against a global lock-order graph behind
  // one global lock: a cost on every lock and a point where all threads meet. The tests keep the check.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::StatusOr<doze::gateway::Config> config = doze::gateway::LoadConfigFile(flags->config);
  if (!config.ok()) {
    std::cerr << "doze-gateway: " << config.status().message() << "\n";
    return 1;
  }
  if (flags->check_config) {
    if (absl::Status paths = doze::gateway::CheckConfigPaths(*config); !paths.ok()) {
      std::cerr << "doze-gateway: " << flags->config << ":\n" << paths.message() << "\n";
      return 1;
    }
    std::cout << flags->config << ": OK (" << config->functions.size() << " functions)\n";
    return 0;
  }
  std::string host = config->server.host;
  absl::StatusOr<std::unique_ptr<doze::gateway::Gateway>> gateway =
      doze::gateway::Gateway::Create(*std::move(config), flags->config);
  if (!gateway.ok()) {
    std::cerr << "doze-gateway: " << gateway.status().message() << "\n";
    return 1;
  }
  absl::StatusOr<uint16_t> port = (*gateway)->Start();
  if (!port.ok()) {
    std::cerr << "doze-gateway: " << port.status().message() << "\n";
    return 1;
  }
  std::cout << nlohmann::json{{"event", "ready"},
                              {"url", "http://" + host + ":" + std::to_string(*port)},
                              {"port", *port}}
                   .dump()
            << std::endl;
  (*gateway)->Wait();
  return 0;
}

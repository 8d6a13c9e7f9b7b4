// The gateway process: the HTTP server, one queue, dispatcher and worker supervisor per function, the
// lifecycle policy that starts and stops the workers, and the signals (SIGTERM: drain and exit; SIGHUP:
// reload the function definitions).
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/signal_set.hpp"
#include "boost/asio/steady_timer.hpp"
#include "gateway/api/api_keys.h"
#include "gateway/api/completions_handler.h"
#include "gateway/api/ops_handler.h"
#include "gateway/api/prompt_builder.h"
#include "gateway/common/owner_lock.h"
#include "gateway/config/config.h"
#include "gateway/functions/function_table.h"
#include "gateway/http/http_server.h"
#include "gateway/ops/reload_log.h"
#include "gateway/workers/lifecycle_driver.h"
#include "gateway/workers/process_spawner.h"
#include "gateway/workers/worker_client.h"
#include "worker/tokenizer/tokenizer.h"

namespace doze::gateway {

class Gateway {
 public:
  // Loads the model's tokenizer and context length and builds every function; `config_path` is re-read on
  // SIGHUP (empty: no reload).
  static absl::StatusOr<std::unique_ptr<Gateway>> Create(Config config, std::string config_path);
  ~Gateway();

  // Listens and starts the I/O threads; returns the bound port.
  absl::StatusOr<uint16_t> Start();

  // Blocks until a SIGTERM or SIGINT has been handled: stop accepting, let responses finish up to
  // server.shutdown_grace, stop the workers, return.
  void Wait();

  // Re-reads the configuration file and applies the function definitions; the old ones stay on error.
  absl::Status Reload();

 private:
  Gateway(Config config, std::string config_path, std::unique_ptr<Tokenizer> tokenizer, ModelLimits limits,
          ApiKeys keys);
  // Opens the lifecycle's state file, puts every function under the policy and adds the routes.
  absl::Status Init();
  std::shared_ptr<FunctionRuntime> MakeFunction(const FunctionConfig& function);
  // How the `instance`th runtime of `function` (counted over reloads) runs its worker.
  SupervisorOptions SupervisorOptionsFor(const FunctionConfig& function, int instance) const;
  void WatchSignals();
  void BeginShutdown();
  void AwaitQuiet(absl::Time deadline, bool workers_phase);

  // Held from start to exit (released last): a second gateway on the same socket folder would probe this
  // one's workers on their socket paths and take them for its own.
  OwnerLock socket_dir_lock_;
  Config config_;
  const std::string config_path_;
  std::unique_ptr<Tokenizer> tokenizer_;
  ApiKeySet keys_;  // replaced by a reload
  ReloadLog reloads_;
  PromptBuilder prompts_;
  boost::asio::io_context io_context_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer shutdown_timer_;
  ProcessSpawner spawner_;
  std::unique_ptr<WorkerClientFactory> clients_;
  FunctionTable functions_;
  absl::flat_hash_map<std::string, int> instances_;  // runtimes made of each function name so far
  std::unique_ptr<LifecycleDriver> lifecycle_;
  Router router_;
  std::unique_ptr<CompletionsHandler> completions_;
  std::unique_ptr<OpsHandler> ops_;
  std::unique_ptr<HttpServer> server_;
  std::vector<std::thread> threads_;
  bool shutting_down_ = false;
};

}  // namespace doze::gateway

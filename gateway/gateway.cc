#include "gateway/gateway.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <limits>

#include "absl/strings/str_cat.h"
#include "gateway/config/config_diff.h"
#include "gateway/config/config_loader.h"
#include "gateway/config/config_paths.h"
#include "gateway/openai/api_error.h"
#include "gateway/web/chat_page.h"
#include "gateway/workers/grpc_worker_client.h"
#include "nlohmann/json.hpp"
#include "worker/common/file_util.h"
#include "worker/common/logging.h"
#include "worker/common/status_macros.h"

namespace doze::gateway {
namespace {

namespace net = boost::asio;

// config.json's max_position_embeddings (the longest prompt plus completion) and vocab_size.
absl::StatusOr<ModelLimits> ReadModelLimits(const std::string& model_dir) {
  std::string path = model_dir + "/config.json";
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  nlohmann::json config = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  const auto positive = [&](const char* key) {
    return config.is_object() && config.contains(key) && config[key].is_number_integer() &&
           config[key].get<int64_t>() > 0 && config[key].get<int64_t>() <= std::numeric_limits<int>::max();
  };
  for (const char* key : {"max_position_embeddings", "vocab_size"}) {
    if (!positive(key)) return absl::InvalidArgumentError(absl::StrCat(path, ": no positive integer ", key));
  }
  return ModelLimits{config["max_position_embeddings"].get<int>(), config["vocab_size"].get<int>()};
}

HttpLimits LimitsOf(const ServerConfig& server) {
  HttpLimits limits;
  limits.max_connections = server.max_connections;
  limits.max_header_bytes = server.max_header_bytes;
  limits.max_body_bytes = server.max_body_bytes;
  limits.header_timeout = server.header_timeout;
  limits.body_timeout = server.body_timeout;
  limits.stream_idle_timeout = server.stream_idle_timeout;
  limits.max_stream_buffer_bytes = server.max_stream_buffer_bytes;
  return limits;
}

std::string AdminToken(const ServerConfig& server) {
  const char* token = server.admin_token_env.empty() ? nullptr : std::getenv(server.admin_token_env.c_str());
  return token == nullptr ? "" : token;
}

// Where the `instance`th runtime of a function (counted over reloads) has its worker listen: a function
// added back while its old worker still drains gets a socket of its own.
std::string SocketPath(const std::string& dir, const std::string& function, int instance) {
  return instance <= 1 ? absl::StrCat(dir, "/", function, ".sock")
                       : absl::StrCat(dir, "/", function, ".", instance, ".sock");
}

// Each function's unix socket path must fit sockaddr_un, which holds 107 bytes of path; `instance_of`
// says which instance of each function the configuration would run.
absl::Status CheckSocketPaths(const Config& config,
                              const std::function<int(const std::string&)>& instance_of) {
  for (const auto& [name, function] : config.functions) {
    if (SocketPath(config.workers.socket_dir, name, instance_of(name)).size() > 107) {
      return absl::InvalidArgumentError(
          absl::StrCat("workers.socket_dir: the socket of ", name,
                       " would be longer than a unix socket path may be (107 bytes)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Create(Config config, std::string config_path) {
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer,
                   Tokenizer::FromFile(config.model.path + "/tokenizer.json"));
  ASSIGN_OR_RETURN(ModelLimits limits, ReadModelLimits(config.model.path));
  ApiKeys keys;
  if (!config.server.api_keys_file.empty()) {
    ASSIGN_OR_RETURN(keys, ApiKeys::FromFile(config.server.api_keys_file));
  }
  RETURN_IF_ERROR(CheckSocketPaths(config, [](const std::string&) { return 1; }));
  std::error_code error;
  std::filesystem::create_directories(config.workers.socket_dir, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("workers.socket_dir: cannot create ", config.workers.socket_dir, ": ", error.message()));
  }
  absl::StatusOr<OwnerLock> lock =
      OwnerLock::Acquire(config.workers.socket_dir + "/gateway",
                         "two gateways on one socket folder would take each other's workers for their own");
  if (!lock.ok())
    return absl::FailedPreconditionError(absl::StrCat("workers.socket_dir: ", lock.status().message()));
  std::unique_ptr<Gateway> gateway(
      new Gateway(std::move(config), std::move(config_path), std::move(tokenizer), limits, std::move(keys)));
  gateway->socket_dir_lock_ = *std::move(lock);
  RETURN_IF_ERROR(gateway->Init());
  return gateway;
}

Gateway::Gateway(Config config, std::string config_path, std::unique_ptr<Tokenizer> tokenizer,
                 ModelLimits limits, ApiKeys keys)
    : config_(std::move(config)),
      config_path_(std::move(config_path)),
      tokenizer_(std::move(tokenizer)),
      keys_(std::move(keys)),
      prompts_(tokenizer_.get(), limits),
      signals_(io_context_, SIGTERM, SIGINT, SIGHUP),
      shutdown_timer_(io_context_),
      spawner_(io_context_.get_executor()),
      clients_(std::make_unique<GrpcWorkerClientFactory>(
          config_.server.grpc_threads, config_.server.busy_poll, config_.server.delivery_threads)) {
  for (const auto& [name, function] : config_.functions) functions_.Put(MakeFunction(function));
  completions_ = std::make_unique<CompletionsHandler>(&functions_, &keys_, &prompts_, tokenizer_.get(),
                                                      RealClock::Get());
  router_.Add("POST", "/v1/chat/completions",
              [this](HttpRequest request, std::shared_ptr<ResponseChannel> channel) {
                completions_->Handle(request, std::move(channel), /*chat=*/true);
              });
  router_.Add("GET", "/", [](HttpRequest, std::shared_ptr<ResponseChannel> channel) {
    HttpResponse page = MakeResponse(200, std::string(ChatPageHtml()), "text/html; charset=utf-8");
    page.headers.emplace_back("Cache-Control", "no-cache");
    // The page's own inline script and style, requests to this gateway only, and no framing by other pages
    // (the page holds an API key: a page that framed it could trick clicks into it).
    page.headers.emplace_back("Content-Security-Policy",
                              "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                              "frame-ancestors 'none'");
    page.headers.emplace_back("X-Frame-Options", "DENY");
    channel->Send(std::move(page));
  });
  router_.Add("POST", "/v1/completions",
              [this](HttpRequest request, std::shared_ptr<ResponseChannel> channel) {
                completions_->Handle(request, std::move(channel), /*chat=*/false);
              });
  server_ = std::make_unique<HttpServer>(io_context_, LimitsOf(config_.server), &router_,
                                         config_.server.io_threads, config_.server.busy_poll);
}

absl::Status Gateway::Init() {
  ASSIGN_OR_RETURN(lifecycle_, LifecycleDriver::Create(config_.lifecycle, &functions_, RealClock::Get(),
                                                       io_context_.get_executor()));
  for (const auto& function : functions_.All()) lifecycle_->Attach(*function);
  ops_ = std::make_unique<OpsHandler>(&functions_, lifecycle_.get(), &keys_, &reloads_,
                                      AdminToken(config_.server));
  ops_->Register(&router_);
  return absl::OkStatus();
}

Gateway::~Gateway() {
  io_context_.stop();
  for (std::thread& thread : threads_) thread.join();
}

SupervisorOptions Gateway::SupervisorOptionsFor(const FunctionConfig& function, int instance) const {
  SupervisorOptions options;
  options.function = function.name;
  options.address = "unix:" + SocketPath(config_.workers.socket_dir, function.name, instance);
  options.spawn.binary = config_.workers.binary.empty() ? DefaultWorkerBinary() : config_.workers.binary;
  options.spawn.args = {"--model",        config_.model.path,
                        "--function",     function.name,
                        "--listen",       options.address,
                        "--backend",      config_.model.backend,
                        "--max-num-seqs", absl::StrCat(function.worker.max_num_seqs)};
  if (function.worker.gpu_memory_fraction.has_value()) {
    options.spawn.args.push_back("--gpu-memory-fraction");
    options.spawn.args.push_back(absl::StrCat(*function.worker.gpu_memory_fraction));
  }
  if (function.worker.gpu.has_value()) {
    options.spawn.extra_env.emplace_back("CUDA_VISIBLE_DEVICES", absl::StrCat(*function.worker.gpu));
  }
  options.spawn.log_prefix = absl::StrCat("[", function.name, "] ");
  options.start_timeout = config_.workers.start_timeout;
  options.stop_timeout = config_.workers.stop_timeout;
  options.backoff_initial = config_.workers.backoff_initial;
  options.backoff_max = config_.workers.backoff_max;
  return options;
}

std::shared_ptr<FunctionRuntime> Gateway::MakeFunction(const FunctionConfig& function) {
  auto supervisor = std::make_shared<WorkerSupervisor>(
      SupervisorOptionsFor(function, ++instances_[function.name]), &spawner_, clients_.get(),
      RealClock::Get(), io_context_.get_executor());
  auto runtime = std::make_shared<FunctionRuntime>(std::make_shared<const FunctionConfig>(function),
                                                   supervisor, std::make_shared<FunctionMetrics>());
  DispatcherOptions options{function.name, config_.workers.max_queue, function.worker.max_in_flight,
                            config_.workers.queue_timeout};
  options.unresponsive_timeout = config_.workers.unresponsive_timeout;
  auto dispatcher = std::make_shared<Dispatcher>(options, supervisor, runtime->metrics_ptr(),
                                                 RealClock::Get(), io_context_.get_executor());
  dispatcher->Init();
  runtime->set_dispatcher(dispatcher);
  std::shared_ptr<FunctionMetrics> metrics = runtime->metrics_ptr();
  WorkerSupervisor* raw = supervisor.get();
  supervisor->AddObserver([metrics, raw](const WorkerTransition& transition) {
    if (transition.from == WorkerState::kStarting && transition.to == WorkerState::kReady) {
      metrics->cold_start().Observe(raw->snapshot().last_cold_start_ms / 1000.0);
    }
  });
  return runtime;
}

absl::StatusOr<uint16_t> Gateway::Start() {
  ASSIGN_OR_RETURN(uint16_t port, server_->Start(config_.server.host, config_.server.port));
  WatchSignals();
  lifecycle_->Start();
  for (int i = 0; i < config_.server.io_threads; ++i) threads_.emplace_back([this] { io_context_.run(); });
  return port;
}

void Gateway::WatchSignals() {
  signals_.async_wait([this](boost::system::error_code error, int signal) {
    if (error) return;
    if (signal == SIGHUP) {
      absl::Status reloaded = Reload();
      reloads_.Record(absl::Now(), reloaded);
      if (!reloaded.ok()) {
        DOZE_LOG(ERROR) << "reload failed, keeping the old functions: " << reloaded;
      }
      return WatchSignals();
    }
    BeginShutdown();
  });
}

void Gateway::BeginShutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  DOZE_LOG(INFO) << "shutting down: no new connections; letting responses finish";
  server_->StopAccepting();
  lifecycle_->Shutdown();
  for (const auto& function : functions_.All()) {
    function->dispatcher().Close(
        WithRetryAfter(absl::UnavailableError("the gateway is shutting down"), absl::Seconds(5)));
  }
  AwaitQuiet(absl::Now() + config_.server.shutdown_grace, /*workers_phase=*/false);
}

void Gateway::AwaitQuiet(absl::Time deadline, bool workers_phase) {
  // Every answer written; in the workers' phase also every worker stopped (the answers their ends caused, a
  // retry refused or an error event, are written before the loop stops).
  bool quiet = server_->num_busy() == 0;
  if (workers_phase) {
    for (const auto& function : functions_.All()) {
      WorkerState state = function->supervisor().state();
      quiet &= state == WorkerState::kStopped || state == WorkerState::kFailed;
    }
  }
  if (quiet || absl::Now() >= deadline) {
    if (workers_phase) return io_context_.stop();
    for (const auto& function : functions_.All()) function->supervisor().Stop("gateway shutting down");
    return AwaitQuiet(absl::Now() + config_.workers.stop_timeout + absl::Seconds(1), /*workers_phase=*/true);
  }
  shutdown_timer_.expires_after(std::chrono::milliseconds(20));
  shutdown_timer_.async_wait([this, deadline, workers_phase](boost::system::error_code error) {
    if (!error) AwaitQuiet(deadline, workers_phase);
  });
}

void Gateway::Wait() {
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
  DOZE_LOG(INFO) << "gateway stopped";
}

absl::Status Gateway::Reload() {
  if (config_path_.empty()) return absl::FailedPreconditionError("no configuration file to reload");
  ASSIGN_OR_RETURN(Config fresh, LoadConfigFile(config_path_));
  RETURN_IF_ERROR(CheckSocketPaths(fresh, [this](const std::string& name) {
    auto made = instances_.find(name);
    return (made == instances_.end() ? 0 : made->second) + (functions_.Find(name) == nullptr ? 1 : 0);
  }));
  // The key file is read before anything changes: a bad one fails the whole reload.
  ApiKeys keys;
  if (!fresh.server.api_keys_file.empty()) {
    ASSIGN_OR_RETURN(keys, ApiKeys::FromFile(fresh.server.api_keys_file));
  }
  for (const std::string& key : RestartOnlyChanges(config_, fresh)) {
    DOZE_LOG(WARNING) << "reload: " << key << " changed; it takes effect when the gateway restarts";
  }
  // The limits a reload applies, for the functions it adds as for those it keeps.
  config_.workers.max_queue = fresh.workers.max_queue;
  config_.workers.queue_timeout = fresh.workers.queue_timeout;
  config_.workers.unresponsive_timeout = fresh.workers.unresponsive_timeout;
  // A configured file always holds a key (FromFile): the paths say whether keys were and are required.
  if (!fresh.server.api_keys_file.empty() || !config_.server.api_keys_file.empty()) {
    DOZE_LOG(INFO) << "reload: /v1 API keys "
                   << (!fresh.server.api_keys_file.empty()
                           ? absl::StrCat("read again from ", fresh.server.api_keys_file)
                           : "no longer required");
  }
  config_.server.api_keys_file = fresh.server.api_keys_file;
  keys_.Replace(std::move(keys));
  std::vector<std::shared_ptr<FunctionRuntime>> added;
  for (const auto& [name, function] : fresh.functions) {
    std::shared_ptr<FunctionRuntime> existing = functions_.Find(name);
    if (existing == nullptr) {
      added.push_back(MakeFunction(function));
      continue;
    }
    existing->set_config(std::make_shared<const FunctionConfig>(function));
    existing->supervisor().UpdateSpawnSpec(SupervisorOptionsFor(function, instances_[name]).spawn);
    existing->dispatcher().UpdateOptions(fresh.workers.max_queue, function.worker.max_in_flight,
                                         fresh.workers.queue_timeout, fresh.workers.unresponsive_timeout);
  }
  std::vector<std::shared_ptr<FunctionRuntime>> removed;
  for (const auto& function : functions_.All()) {
    if (!fresh.functions.contains(function->name())) removed.push_back(function);
  }
  // The policy lets go of removed functions before their workers stop, and takes the added ones (putting
  // them into the table) and the changed schedules.
  lifecycle_->Reconfigure(fresh.lifecycle, added, &functions_);
  for (const auto& function : removed) {
    functions_.Remove(function->name());
    function->dispatcher().Close(
        absl::NotFoundError(absl::StrCat("function ", function->name(), " was removed")));
    function->supervisor().Stop("removed from the configuration");
  }
  DOZE_LOG(INFO) << "reloaded " << config_path_ << ": " << fresh.functions.size() << " functions ("
                 << added.size() << " added, " << removed.size() << " removed)";
  return absl::OkStatus();
}

}  // namespace doze::gateway

#include "gateway/config/config_loader.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "gateway/config/yaml_map.h"
#include "worker/common/file_util.h"
#include "worker/common/status_macros.h"

namespace doze::gateway {
namespace {

template <typename T, typename U>
void SetIf(const std::optional<U>& value, T* field) {
  if (value.has_value()) *field = static_cast<T>(*value);
}

// Splits "host:port"; port 0 means any free port.
absl::Status ParseListen(YamlMap& map, ServerConfig* server) {
  ASSIGN_OR_RETURN(std::optional<std::string> listen, map.String("listen"));
  if (!listen.has_value()) return absl::OkStatus();
  size_t colon = listen->rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 || !absl::SimpleAtoi(listen->substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return map.Error("listen", absl::StrCat("must be host:port, got \"", *listen, "\""));
  }
  server->host = listen->substr(0, colon);
  server->port = static_cast<uint16_t>(port);
  return absl::OkStatus();
}

absl::Status ParseServer(const YAML::Node& node, ServerConfig* server) {
  ASSIGN_OR_RETURN(YamlMap map, YamlMap::Create(node, "server"));
  RETURN_IF_ERROR(ParseListen(map, server));
  ASSIGN_OR_RETURN(std::optional<std::string> keys_file, map.String("api_keys_file"));
  SetIf(keys_file, &server->api_keys_file);
  ASSIGN_OR_RETURN(std::optional<std::string> admin_env, map.String("admin_token_env"));
  SetIf(admin_env, &server->admin_token_env);
  ASSIGN_OR_RETURN(std::optional<int64_t> io_threads, map.Int("io_threads", 1, 64));
  SetIf(io_threads, &server->io_threads);
  ASSIGN_OR_RETURN(std::optional<int64_t> grpc_threads, map.Int("grpc_threads", 1, 64));
  SetIf(grpc_threads, &server->grpc_threads);
  ASSIGN_OR_RETURN(std::optional<int64_t> delivery_threads, map.Int("delivery_threads", 0, 8));
  SetIf(delivery_threads, &server->delivery_threads);
  ASSIGN_OR_RETURN(std::optional<absl::Duration> busy_poll, map.Duration("busy_poll", /*allow_zero=*/true));
  SetIf(busy_poll, &server->busy_poll);
  ASSIGN_OR_RETURN(std::optional<int64_t> max_connections, map.Int("max_connections", 1, 1'000'000));
  SetIf(max_connections, &server->max_connections);
  ASSIGN_OR_RETURN(std::optional<int64_t> max_body, map.Int("max_body_bytes", 1024, int64_t{1} << 30));
  SetIf(max_body, &server->max_body_bytes);
  ASSIGN_OR_RETURN(std::optional<int64_t> max_header, map.Int("max_header_bytes", 1024, 1 << 20));
  SetIf(max_header, &server->max_header_bytes);
  ASSIGN_OR_RETURN(std::optional<absl::Duration> header_timeout, map.Duration("header_timeout"));
  SetIf(header_timeout, &server->header_timeout);
  ASSIGN_OR_RETURN(std::optional<absl::Duration> body_timeout, map.Duration("body_timeout"));
  SetIf(body_timeout, &server->body_timeout);
  ASSIGN_OR_RETURN(std::optional<absl::Duration> idle, map.Duration("stream_idle_timeout"));
  SetIf(idle, &server->stream_idle_timeout);
  ASSIGN_OR_RETURN(std::optional<int64_t> stream_buffer,
                   map.Int("max_stream_buffer_bytes", 4096, int64_t{1} << 30));
  SetIf(stream_buffer, &server->max_stream_buffer_bytes);
  ASSIGN_OR_RETURN(std::optional<absl::Duration> grace, map.Duration("shutdown_grace"));
  SetIf(grace, &server->shutdown_grace);
  return map.CheckNoUnknownKeys();
}

absl::Status ParseModel(const YAML::Node& node, ModelConfig* model) {
  ASSIGN_OR_RETURN(YamlMap map, YamlMap::Create(node, "model"));
  ASSIGN_OR_RETURN(std::optional<std::string> path, map.String("path"));
  if (!path.has_value() || path->empty()) return map.Error("path", "is required");
  model->path = *path;
  ASSIGN_OR_RETURN(std::optional<std::string> backend, map.String("backend"));
  SetIf(backend, &model->backend);
  if (model->backend != "auto" && model->backend != "cuda" && model->backend != "cpu") {
    return map.Error("backend", absl::StrCat("must be auto, cuda or cpu, got \"", model->backend, "\""));
  }
  return map.CheckNoUnknownKeys();
}

absl::Status ParseWorkers(const YAML::Node& node, WorkersConfig* workers) {
  ASSIGN_OR_RETURN(YamlMap map, YamlMap::Create(node, "workers"));
  YAML::Node idle_stop = map.Raw("idle_stop");
  if (idle_stop && !idle_stop.IsNull())
    return map.Error("idle_stop", "was replaced by schedule.idle_timeout");
  ASSIGN_OR_RETURN(std::optional<std::string> binary, map.String("binary"));
  SetIf(binary, &workers->binary);
  ASSIGN_OR_RETURN(std::optional<std::string> socket_dir, map.String("socket_dir"));
  SetIf(socket_dir, &workers->socket_dir);
  struct DurationKey {
    const char* key;
    absl::Duration* field;
  };
  for (const DurationKey& entry : {DurationKey{"start_timeout", &workers->start_timeout},
                                   DurationKey{"queue_timeout", &workers->queue_timeout},
                                   DurationKey{"unresponsive_timeout", &workers->unresponsive_timeout},
                                   DurationKey{"stop_timeout", &workers->stop_timeout},
                                   DurationKey{"backoff_initial", &workers->backoff_initial},
                                   DurationKey{"backoff_max", &workers->backoff_max}}) {
    ASSIGN_OR_RETURN(std::optional<absl::Duration> value, map.Duration(entry.key));
    SetIf(value, entry.field);
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> max_queue, map.Int("max_queue", 1, 1'000'000));
  SetIf(max_queue, &workers->max_queue);
  return map.CheckNoUnknownKeys();
}

absl::Status ParseWorkerSettings(const YAML::Node& node, const std::string& path, WorkerSettings* worker) {
  ASSIGN_OR_RETURN(YamlMap map, YamlMap::Create(node, path));
  ASSIGN_OR_RETURN(std::optional<int64_t> gpu, map.Int("gpu", 0, 1024));
  SetIf(gpu, &worker->gpu);
  ASSIGN_OR_RETURN(std::optional<double> fraction, map.Double("gpu_memory_fraction", 0.01, 1.0));
  if (fraction.has_value()) worker->gpu_memory_fraction = *fraction;
  ASSIGN_OR_RETURN(std::optional<int64_t> max_num_seqs, map.Int("max_num_seqs", 1, 4096));
  SetIf(max_num_seqs, &worker->max_num_seqs);
  ASSIGN_OR_RETURN(std::optional<int64_t> max_in_flight, map.Int("max_in_flight", 1, 100'000));
  SetIf(max_in_flight, &worker->max_in_flight);
  return map.CheckNoUnknownKeys();
}

// Function names appear in URLs, metrics labels and socket file names.
bool IsValidFunctionName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
          c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

absl::Status ParseFunctionSampling(YamlMap& map, FunctionConfig* function) {
  ASSIGN_OR_RETURN(function->temperature, map.Double("temperature", 0.0, 2.0));
  ASSIGN_OR_RETURN(std::optional<double> top_p, map.Double("top_p", 0.0, 1.0));
  if (top_p.has_value() && *top_p == 0.0) return map.Error("top_p", "must be in (0, 1]");
  function->top_p = top_p;
  ASSIGN_OR_RETURN(std::optional<int64_t> max_tokens, map.Int("max_tokens", 1, 1 << 20));
  if (max_tokens.has_value()) function->max_tokens = static_cast<int>(*max_tokens);
  ASSIGN_OR_RETURN(std::optional<std::string> format, map.String("response_format"));
  SetIf(format, &function->response_format);
  if (!function->response_format.empty() && function->response_format != "text" &&
      function->response_format != "json_object") {
    return map.Error("response_format", "must be text or json_object");
  }
  return absl::OkStatus();
}

absl::Status ParseFunction(const std::string& name, const YAML::Node& node, FunctionConfig* function) {
  std::string path = absl::StrCat("functions.", name);
  if (!IsValidFunctionName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": name must be 1-64 of [a-z0-9_-]"));
  }
  ASSIGN_OR_RETURN(YamlMap map, YamlMap::Create(node, path));
  function->name = name;
  ASSIGN_OR_RETURN(std::optional<std::string> prompt, map.String("system_prompt"));
  SetIf(prompt, &function->system_prompt);
  ASSIGN_OR_RETURN(std::optional<std::string> description, map.String("description"));
  SetIf(description, &function->description);
  RETURN_IF_ERROR(ParseFunctionSampling(map, function));
  RETURN_IF_ERROR(ParseWorkerSettings(map.Raw("worker"), map.PathOf("worker"), &function->worker));
  function->schedule = map.Raw("schedule");
  return map.CheckNoUnknownKeys();
}

absl::Status ParseFunctions(const YAML::Node& node, std::map<std::string, FunctionConfig>* functions) {
  ASSIGN_OR_RETURN(YamlMap map, YamlMap::Create(node, "functions"));
  for (const std::string& name : map.Keys()) {
    RETURN_IF_ERROR(ParseFunction(name, map.Raw(name), &(*functions)[name]));
  }
  RETURN_IF_ERROR(map.CheckNoUnknownKeys());  // every name was read: this finds a name given twice
  if (functions->empty()) return absl::InvalidArgumentError("functions: at least one function is required");
  return absl::OkStatus();
}

absl::Status ParseRoot(const YAML::Node& root, Config* config) {
  ASSIGN_OR_RETURN(YamlMap map, YamlMap::Create(root, ""));
  RETURN_IF_ERROR(ParseServer(map.Raw("server"), &config->server));
  RETURN_IF_ERROR(ParseModel(map.Raw("model"), &config->model));
  RETURN_IF_ERROR(ParseWorkers(map.Raw("workers"), &config->workers));
  RETURN_IF_ERROR(ParseFunctions(map.Raw("functions"), &config->functions));
  // Read by ParseLifecycleConfig below; marked known here.
  for (const char* key : {"billing", "schedule", "state_file", "simulation"}) map.Raw(key);
  return map.CheckNoUnknownKeys();
}

// The lifecycle keys (billing, schedule, state_file, simulation) and each function's schedule overrides.
absl::Status ParseLifecycle(const YAML::Node& root, Config* config) {
  std::vector<lifecycle::FunctionNode> nodes;
  for (const auto& [name, function] : config->functions) {
    YAML::Node node(YAML::NodeType::Map);
    if (function.schedule) node["schedule"] = function.schedule;
    nodes.push_back({name, node});
  }
  ASSIGN_OR_RETURN(config->lifecycle, lifecycle::ParseLifecycleConfig(root, nodes));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Config> ParseConfig(const std::string& yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", e.mark.line + 1, ", column ", e.mark.column + 1, ": ", e.msg));
  }
  Config config;
  RETURN_IF_ERROR(ParseRoot(root, &config));
  RETURN_IF_ERROR(ParseLifecycle(root, &config));
  return config;
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  absl::StatusOr<Config> config = ParseConfig(text);
  if (!config.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", config.status().message()));
  return config;
}

}  // namespace doze::gateway

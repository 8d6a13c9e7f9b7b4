// The gateway's configuration (config/doze.yaml), validated once at load into these typed structs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "gateway/lifecycle/lifecycle_config.h"
#include "yaml-cpp/yaml.h"

namespace doze::gateway {

// `server:`: the HTTP side.
struct ServerConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;       // 0: any free port (tests).
  std::string api_keys_file;  // Empty: /v1 needs no key.
  std::string admin_token_env = "DOZE_ADMIN_TOKEN";
  int io_threads = 2;    // Asio threads: accept, read and route requests.
  int grpc_threads = 1;  // Threads that drive the calls to the workers and write their answers to clients,
                         // each with its own completion queue, connection and GenerateStream to each worker.
                         // 2 measured no better on the 2-core test machine with GenerateStream (streams
                         // per-message p99 2.7-3.1 ms against 2.7-2.8; rate p99 0.51 against 0.43 ms):
                         // bench/gateway_load.md.
  // Threads beside each gRPC thread that write a share of a burst's events (a worker message with
  // CallStream::kMinEventsToSplit or more: one per running call of an engine step) to the clients' sockets,
  // so that it is written on more than one core; smaller messages are written by the gRPC thread alone. At
  // 200 streams with an engine's bursts, 1 took 28-37% off the gateway's share of a message's p99 on quiet
  // hosts (bench/gateway_load.md, nineteenth session). 0: the gRPC thread writes everything.
  int delivery_threads = 1;
  // How long the HTTP and gRPC threads poll for more work after each event before they block (0: block at
  // once). Trades CPU during busy periods for no wake-up latency on the next event; idle threads still sleep.
  absl::Duration busy_poll = absl::ZeroDuration();
  int max_connections = 1024;
  int64_t max_body_bytes = 1 << 20;
  int64_t max_header_bytes = 16 << 10;
  absl::Duration header_timeout = absl::Seconds(10);  // From connection or last response to a full header.
  absl::Duration body_timeout = absl::Seconds(30);
  absl::Duration stream_idle_timeout = absl::Seconds(60);  // Longest gap between two writes of a response.
  int64_t max_stream_buffer_bytes = 1 << 20;  // A stream's bytes its client has not taken; beyond: cut.
  absl::Duration shutdown_grace = absl::Seconds(30);  // How long SIGTERM lets streams finish.
};

// `model:`: the checkpoint every worker serves.
struct ModelConfig {
  std::string path;
  std::string backend = "auto";  // auto | cuda | cpu
};

// `workers:`: how worker processes are run.
struct WorkersConfig {
  std::string binary;  // Empty: doze-worker next to doze-gateway.
  std::string socket_dir = "/tmp/doze";
  absl::Duration start_timeout = absl::Seconds(60);
  absl::Duration queue_timeout = absl::Seconds(30);
  // A ready worker whose health checks have failed this long, after one of its calls broke or while calls run
  // on it, is killed (and restarted on demand): a process that outlives its server, or one frozen mid-call,
  // would otherwise hold its calls and its function's queue.
  absl::Duration unresponsive_timeout = absl::Seconds(10);
  int max_queue = 256;
  absl::Duration stop_timeout = absl::Seconds(10);  // Drain, then SIGTERM, then SIGKILL after this.
  absl::Duration backoff_initial = absl::Seconds(1);
  absl::Duration backoff_max = absl::Seconds(60);
};

// `functions.NAME.worker:`: the worker process of one function.
struct WorkerSettings {
  std::optional<int> gpu;
  std::optional<double> gpu_memory_fraction;
  int max_num_seqs = 64;
  int max_in_flight = 256;  // Requests the gateway keeps open on the worker at once.
};

// `functions.NAME:`: one business function, its prompt and its defaults.
struct FunctionConfig {
  std::string name;
  std::string description;
  std::string system_prompt;
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int> max_tokens;
  std::string response_format;  // Empty, "text" or "json_object"; the default when a request has none.
  WorkerSettings worker;
  YAML::Node schedule;  // Overrides of `schedule:`, parsed into Config::lifecycle.
};

// The whole file.
struct Config {
  ServerConfig server;
  ModelConfig model;
  WorkersConfig workers;
  std::map<std::string, FunctionConfig> functions;
  lifecycle::LifecycleConfig lifecycle;  // billing, schedule, state_file, simulation.
};

}  // namespace doze::gateway
